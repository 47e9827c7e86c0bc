"""The benchmark: a YAML config -> (slices x acquisitions x solvers) -> metrics, tables and figures.

- :mod:`.config`: the config schema (typed dataclasses, every key checked);
- :mod:`.items`: the plan (one item per slice, solver, R and mask seed), config hashes and per-item seeds;
- :mod:`.acquisitions`: the acquisitions of the config's ``acquisition:`` section, per R;
- :mod:`.records`: finished items as stored; :mod:`.store`: the results folder (resume, reuse, lock);
- :mod:`.runtime`: devices and torchrun ranks; :mod:`.run`: the run loop;
- :mod:`.report`: ``summary.md`` tables; :mod:`.figures`: slice figures, uncertainty maps, loss curves.
"""
from .run import load_bench_config, run_benchmark

__all__ = ["load_bench_config", "run_benchmark"]
