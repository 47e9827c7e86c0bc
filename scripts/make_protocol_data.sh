#!/usr/bin/env bash
# Build the measured-results protocol data (README "Results"): simulate 8-coil k-space from the team's
# real brain-slice collection and prepare it on one 128 x 128 grid.
# Usage: scripts/make_protocol_data.sh BRAIN_SLICES_H5 OUT_DIR
# Patients of each split are listed in configs/protocol_split.yaml; the training and benchmark configs
# select them by patient id, so one prepared file holds every split.
set -euo pipefail
src=${1:?brain_slices.h5 path}
out=${2:-outputs/protocol}
mkdir -p "$out"
padis-simulate "$src" --out "$out/raw" --coils 8 --snr-db 30 --matrix 128 --readout-oversampling 2 --seed 0
padis-prepare "$out/raw" --out "$out/prepared_128.h5" --size 128 --slices all --noise-region 10 --seed 0
