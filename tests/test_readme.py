"""The README's Python examples run as written (with fewer sampler steps) and give real reconstructions:
every image they print beats zero-filled on the README's slice; its results table quotes committed results."""
import json
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# Fewer steps than the README for the fast samplers, so the test stays fast (the README quotes full length).
# PaDIS-DPS keeps its 20 x 5: shorter VE-DPS chains do not converge (see solvers/dps.py).
FEWER_STEPS = {r"\bsteps=50": "steps=12",
               r"\bnum_steps=50": "num_steps=30", r"\biterations=20": "iterations=8"}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.fixture(scope="module")
def deepinv_example():
    blocks = [b for b in python_blocks(README.read_text()) if "slice_problem(" in b]
    assert len(blocks) == 1, "the README's deepinv example is one python block using slice_problem"
    code = blocks[0]
    for full, short in FEWER_STEPS.items():
        code, n = re.subn(full, short, code)
        assert n == 1, f"README example should contain {full!r} once: update FEWER_STEPS"
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    return namespace


@pytest.mark.slow
def test_readme_deepinv_example_beats_zero_filled(deepinv_example):
    ns = deepinv_example
    metrics = ns["image_metrics"]
    zf = metrics(ns["physics"].A_adjoint(ns["y"]), ns["x_ref"])["psnr"]
    for name in ("x_hat", "x_dds", "x_dps", "x_pnp"):
        assert metrics(ns[name], ns["x_ref"])["psnr"] > zf + 0.5, name


def test_readme_results_table_quotes_the_committed_results():
    """Every PSNR / SSIM pair of a row of the README's results table is a mean (all contrasts, the row's R) of the
    results.json of the experiment that row names: the numbers follow their configs."""
    rows = [line for line in README.read_text().splitlines() if line.startswith("| [") and "`experiments/" in line]
    assert len(rows) >= 5, "the README's results table: one row per experiment, each naming its folder"
    for row in rows:
        folder = re.search(r"`(experiments/\w+)/?(?:config\.yaml)?`", row).group(1)
        acceleration = float(re.search(r"R = (\d+)", row).group(1))
        quoted = re.findall(r"(\d+\.\d\d)\**\s*/\s*(\d\.\d{3})", row)
        assert len(quoted) >= 2, row
        means = json.loads((README.parent / folder / "results.json").read_text())["means"]
        committed = {(f"{m['psnr']:.2f}", f"{m['ssim']:.3f}") for m in means
                     if float(m["R"]) == acceleration and m.get("contrast") in (None, "all")}
        assert set(quoted) <= committed, (folder, sorted(set(quoted) - committed))


def test_readme_mrf_numbers_quote_the_committed_test_results():
    """The README's MR-fingerprinting sentence: every T1 / T2 MAPE pair is a mean of experiments/mrf_test."""
    text = README.read_text()
    section = text[text.index("## MR fingerprinting"):text.index("## Reader study")]
    quoted = set(re.findall(r"(\d+\.\d) / (\d+\.\d) %", section))
    assert len(quoted) >= 4, section
    means = json.loads((README.parent / "experiments" / "mrf_test" / "results.json").read_text())["means"]
    committed = {(f"{m['mape_t1']:.1f}", f"{m['mape_t2']:.1f}") for m in means}
    assert quoted <= committed, sorted(quoted - committed)
