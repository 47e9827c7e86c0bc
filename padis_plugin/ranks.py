"""What torchrun ranks must agree on before they work together."""
from __future__ import annotations

import torch.distributed as dist

from .errors import ConfigError


def require_same(value: str, what: str) -> None:
    """Every rank of the process group holds the same ``value`` (e.g. its resolved config's hash), or every
    rank raises one :class:`ConfigError` listing them: ranks started with different files or ``--set`` values
    would otherwise fail later with a collective's traceback, or, worse, run side by side without a word."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    if len(set(values)) > 1:
        listed = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        raise ConfigError(f"the torchrun ranks run different {what} ({listed}); start every rank with the same "
                          "command and files")
