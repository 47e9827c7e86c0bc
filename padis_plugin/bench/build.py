"""The solvers of a benchmark config, built by name with every entry's problems reported together."""
from __future__ import annotations

from ..config import Problems, problems_of
from ..errors import ConfigError, ParamsError
from .config import BenchConfig


def build_solvers(cfg: BenchConfig, device, source=None, grid: int | None = None, progress: bool = True) -> dict:
    """label -> solver; unknown names and parameters of every entry raise one ConfigError naming the keys.
    ``grid``: the data's N, for solvers whose prior defaults to the one trained on that grid. ``progress``
    False (``--no-progress``) also silences each solver's own bars."""
    from ..solvers.registry import available_solvers, available_text, build_solver, solver_task
    names = available_solvers()
    solvers, bad = {}, Problems(source)
    for i, entry in enumerate(cfg.solvers):
        if entry.name not in names:
            bad.add(f"solvers.{i}.name", f": unknown solver '{entry.name}' ({available_text()})")
            continue
        task = solver_task(entry.name)
        if task != cfg.task:
            bad.add(f"solvers.{i}.name", f": '{entry.name}' solves the '{task}' task; this config's task is "
                                         f"'{cfg.task}'" + (" (set 'task: mrf')" if task == "mrf" else ""))
            continue
        try:
            solvers[entry.display] = build_solver(entry.name, dict(entry.params), device, source,
                                                  prefix=f"solvers.{i}.params", grid=grid)
        except ParamsError as exc:  # each problem already names the file and the dotted key
            bad.extend(problems_of(exc))
        except ConfigError as exc:
            bad.add(f"solvers.{i}", f"({entry.display}): {exc}")
    bad.raise_any()
    if not progress:
        for solver in solvers.values():
            if hasattr(solver, "progress"):
                solver.progress = False
    return solvers
