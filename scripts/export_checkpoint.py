"""Export a training checkpoint as a shipped prior: EMA weights only, fp16, with its provenance.

    python scripts/export_checkpoint.py outputs/train/padis_s25 padis-s25 [--device-note "CPU, 1 core"]

Writes padis_plugin/bundled/checkpoints/<name>.safetensors + .json (loadable by name:
``PaDISDenoiser.from_pretrained("padis-s25")``, ``checkpoint: padis-s25`` in a config).
"""
import argparse
from pathlib import Path

from padis_plugin.checkpoints import read_checkpoint_config
from padis_plugin.prior import load_prior
from padis_plugin.train.loop import latest_checkpoint, loss_tenths, read_log

OUT_DIR = Path(__file__).resolve().parents[1] / "padis_plugin" / "bundled" / "checkpoints"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="padis-train output folder (its latest checkpoint is exported)")
    parser.add_argument("name", help="shipped name, e.g. padis-s25")
    parser.add_argument("--device-note", default="", help="where it was trained, recorded in the JSON")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)

    ckpt = latest_checkpoint(args.run)
    if ckpt is None:
        raise SystemExit(f"error: {args.run}: no checkpoint (latest.json) found")
    config = read_checkpoint_config(ckpt)
    prior = load_prior(ckpt)  # EMA weights when present
    training = config.get("training", {})
    data = config.get("data", {})
    log = read_log(args.run)
    provenance = {
        "shipped_name": args.name,
        "training": {k: training.get(k) for k in ("step", "steps", "elapsed_s", "seed", "world_size", "precision")},
        "data": {"path": data.get("path"), "num_slices": data.get("num_slices"), "seed": data.get("seed"),
                 "patients": data.get("patients"), "ids": data.get("ids")},
        "trained_on": args.device_note,
        "loss": loss_tenths(log) if log else None,  # convergence: first / middle / last tenth of the steps
        "weights": "EMA, fp16",
    }
    stem = args.out_dir / args.name
    prior.save_pretrained(stem, fp16=True, extra_config=provenance)
    size = stem.with_suffix(".safetensors").stat().st_size / 1e6
    print(f"wrote {stem}.safetensors ({size:.2f} MB) and {stem}.json from {ckpt}")


if __name__ == "__main__":
    main()
