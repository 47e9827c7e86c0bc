"""A tiny synthetic padis-bench output folder in the real layout (results.json rows, recons/<slice>/
<label>_R<R>_seed<seed>.npy, recons/<slice>/reference.npy), and helpers to run ``padis-study serve``."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from padis_plugin.data.files import safe_name

REPO = Path(__file__).resolve().parents[1]
# label -> noise level: the lower, the better every metric
SOLVERS = {"PaDIS S=25": 0.02, "EDM S=25": 0.08, "Wavelet-L1": 0.15}


def _phantom(n: int, rng) -> np.ndarray:
    yy, xx = np.mgrid[-1:1:n * 1j, -1:1:n * 1j]
    img = (xx ** 2 / 0.7 + yy ** 2 / 0.9 < 0.8).astype(float)
    for _ in range(4):
        cx, cy, r = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.05, 0.2)
        img += 0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2)
    return img


def _size(label):
    m = re.search(r"S=(\d+)", label)
    return int(m[1]) if m else None


def make_bench(folder, slices=(("s1:0", "T2"), ("s2:0", "T1"), ("s3:0", "FLAIR")), seeds=(0, 1), R=4.0,
               solvers=SOLVERS, n=32, save_reference=True, skip=()) -> Path:
    """A finished bench folder; ``skip``: (slice id, label, seed) items left out of results and recons."""
    folder = Path(folder)
    rng = np.random.default_rng(0)
    rows = []
    for sid, contrast in slices:
        ref = _phantom(n, rng).astype(np.complex64)
        d = folder / "recons" / safe_name(sid)
        d.mkdir(parents=True, exist_ok=True)
        if save_reference:
            np.save(d / "reference.npy", ref)
        for seed in seeds:
            for label, noise in solvers.items():
                if (sid, label, seed) in skip:
                    continue
                x = ref + noise * rng.standard_normal(ref.shape)
                np.save(d / f"{safe_name(label)}_R{R:g}_seed{seed}.npy", x.astype(np.complex64))
                mse = float(np.mean(np.abs(x - ref) ** 2))
                rows.append({"id": sid, "contrast": contrast, "patient": sid.split(":")[0], "solver": label,
                             "name": label.lower(), "training_size": _size(label), "R": R,
                             "seed": seed, "psnr": float(10 * np.log10(np.abs(ref).max() ** 2 / mse)),
                             "ssim": 1 - noise, "nrmse": noise, "seconds": 0.1, "nfe": 1})
    results = {"name": "synthetic", "config": {}, "dataset": {"path": str(folder / "missing.h5"), "size": n,
               "ids": [s for s, _ in slices]}, "results": rows}
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def start_server(study, *extra):
    """``padis-study serve STUDY --port 0`` in a subprocess; returns (process, base URL)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "padis_plugin.cli.study", "serve", str(study), "--port", "0",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.time() + 60
    lines = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m:
            return proc, f"http://127.0.0.1:{m[1]}"
    proc.kill()
    raise RuntimeError("server did not start: " + "".join(lines))


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
