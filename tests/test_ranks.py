"""torchrun ranks must run the same config: two gloo processes with different values both stop with one
ConfigError listing them; with the same value they go on."""
from __future__ import annotations

import multiprocessing as mp

import pytest


def _rank(rank, world, init, value, queue):
    import torch.distributed as dist

    from padis_plugin.errors import ConfigError
    from padis_plugin.ranks import require_same

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        require_same(value, "benchmark configs")
        queue.put((rank, "ok"))
    except ConfigError as exc:
        queue.put((rank, str(exc)))
    finally:
        dist.destroy_process_group()


def _run(tmp_path, values):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = [ctx.Process(target=_rank, args=(r, len(values), init, v, queue)) for r, v in enumerate(values)]
    for p in procs:
        p.start()
    out = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    return out


@pytest.mark.slow
def test_ranks_with_different_configs_stop_together(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _run(tmp_path / "a", ["abc", "abc"]) == {0: "ok", 1: "ok"}
    out = _run(tmp_path / "b", ["abc", "abd"])
    for rank in (0, 1):
        assert out[rank] == ("the torchrun ranks run different benchmark configs (rank 0: abc, rank 1: abd); "
                             "start every rank with the same command and files")


def test_a_single_process_needs_no_agreement():
    from padis_plugin.ranks import require_same

    require_same("anything", "benchmark configs")
