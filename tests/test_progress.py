"""Progress output: a bar with a total on a terminal; plain lines (no carriage returns or cursor codes) in a log;
nested bars (a sampler's steps) only on a terminal; --no-progress shows nothing."""
from __future__ import annotations

import io

from padis_plugin.progress import nested_bars_shown, progress_bar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_log_gets_plain_lines_with_total_and_rate():
    log = io.StringIO()
    for _ in progress_bar(range(5), desc="prepare", unit="slice", stream=log, log_interval=0):
        pass
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.strip().splitlines()
    assert lines and lines[-1].startswith("prepare: 100%") and "5/5" in lines[-1] and "slice/s" in lines[-1]


def test_nested_bars_only_on_a_terminal_and_no_progress_is_silent():
    log, term = io.StringIO(), _Terminal()
    for stream in (log, term):
        for _ in progress_bar(range(3), desc="dds", stream=stream, nested=True):
            pass
    assert log.getvalue() == "" and "dds" in term.getvalue()
    quiet = io.StringIO()
    for _ in progress_bar(range(3), desc="x", stream=quiet, enabled=False):
        pass
    assert quiet.getvalue() == ""


def test_prepare_knows_its_total(tmp_path):
    import numpy as np

    from padis_plugin.data.fastmri_format import count_fastmri_slices, write_fastmri_h5

    k = (np.random.default_rng(0).standard_normal((3, 2, 16, 16)) + 0j).astype(np.complex64)
    write_fastmri_h5(tmp_path / "a_AXT1.h5", k)
    write_fastmri_h5(tmp_path / "b_AXFLAIR.h5", k[:2])
    assert count_fastmri_slices(tmp_path) == 5
    assert count_fastmri_slices(tmp_path, "centre") == 2
    assert count_fastmri_slices(tmp_path, "all", contrasts=["FLAIR"]) == 2


def test_deepinv_s_own_bars_follow_the_nested_rule_and_the_bench_s_no_progress(tiny_checkpoints):
    """DiffPIR and deepinv's DPS draw deepinv's bar (``verbose``) only on a terminal; ``padis-bench --no-progress``
    turns every solver's own bars off."""
    from padis_plugin.bench.build import build_solvers
    from padis_plugin.bench.config import BenchConfig
    from padis_plugin.config import from_dict

    assert nested_bars_shown(_Terminal()) and not nested_bars_shown(io.StringIO())
    cfg = from_dict(BenchConfig, {"name": "t", "data": {"path": "d.h5"}, "masks": {"accelerations": [4]},
                                  "solvers": [{"name": "diffpir", "params": {"checkpoint": tiny_checkpoints["padis"]}}]})
    assert build_solvers(cfg, "cpu")["diffpir"].progress
    assert not build_solvers(cfg, "cpu", progress=False)["diffpir"].progress
