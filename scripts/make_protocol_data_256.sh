#!/usr/bin/env bash
# Build the 256 measured-results protocol data (README "Results at 256"): simulate 8-coil k-space from the
# team's real brain-slice collection on a 1 mm, 256 mm field-of-view grid and prepare it at 256 x 256.
# Every slice is resampled from its own pixel size (0.51-0.91 mm in the collection; fields of view 220-250 mm)
# to 1 mm pixels (anti-aliased linear) and centre zero-padded to 256 x 256, so anatomy keeps its true size.
# Usage: scripts/make_protocol_data_256.sh BRAIN_SLICES_H5 OUT_DIR
set -euo pipefail
src=${1:?brain_slices.h5 path}
out=${2:-outputs/protocol256}
mkdir -p "$out"
padis-simulate "$src" --out "$out/raw" --coils 8 --snr-db 30 --matrix 256 --spacing-mm 1.0 \
    --readout-oversampling 2 --seed 0
padis-prepare "$out/raw" --out "$out/prepared_256.h5" --size 256 --slices all --noise-region 10 --seed 0
