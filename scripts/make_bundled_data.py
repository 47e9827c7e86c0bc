"""Build padis_plugin/bundled/brain_demo_slices.h5 from the team's brain-slice collection (developer tool).

The bundled file keeps the source layout (group ``slices/``, one dataset per slice with its attributes) so
``padis-simulate`` reads it like the full collection. Subjects are held-out test patients of our protocol.
"""
import argparse
from pathlib import Path

import h5py
import numpy as np

DEMO_KEYS = [
    "open_ms_longitudinal__patient12__study1__T1W__z023",
    "open_ms_longitudinal__patient12__study1__T2W__z021",
    "open_ms_longitudinal__patient12__study1__FLAIR__z025",
    "openneuro_ds002748__sub-29__T1w__z088",
    "openneuro_ds002748__sub-30__T1w__z092",
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("src", type=Path, help="brain_slices.h5 of the collection")
    parser.add_argument("--out", type=Path, default=Path("padis_plugin/bundled/brain_demo_slices.h5"))
    args = parser.parse_args(argv)
    with h5py.File(args.src, "r") as src, h5py.File(args.out, "w") as dst:
        dst.attrs["description"] = "Demo subset of real brain MR magnitude slices; see LICENSE_DATA.md"
        group = dst.create_group("slices")
        for key in DEMO_KEYS:
            image = src["slices"][key][()].astype(np.float16)
            ds = group.create_dataset(key, data=image, compression="gzip", compression_opts=9, shuffle=True)
            ds.attrs.update(dict(src["slices"][key].attrs))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
