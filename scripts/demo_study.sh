#!/usr/bin/env bash
# Demonstration of padis-study (a demonstration of the tool, not a clinical result): a 12-case blinded
# 3-way study built from saved bench reconstructions, answered by two scripted readers whose rule is stated
# (highest SSIM / highest PSNR of the served image to the served reference), then unblinded.
#
#   scripts/demo_study.sh [RESULTS_DIR ...]
#
# Default inputs: the reconstructions of scripts/results/table1_fast (128 protocol, PaDIS/EDM S=25 with DDS
# 100, Wavelet-L1; 2 slices x 10 mask seeds at R=7) and scripts/results/256_figures (256 protocol, 3 slices).
# recons/ is not committed: run those benches first (configs/results_table1_fast.yaml,
# configs/results_256_figures.yaml) if it is missing. References come from recons/<slice>/reference.npy or the
# prepared data file named in results.json (outputs/protocol*/prepared_*.h5).
# Writes the study to outputs/study_demo/ and the report to scripts/results/study_demo/.
# ("python -m padis_plugin.cli.study" is the padis-study console script, with the package importable.)
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=("$@")
[ ${#RESULTS[@]} -gt 0 ] || RESULTS=(scripts/results/table1_fast scripts/results/256_figures)
STUDY=outputs/study_demo
REPORT=scripts/results/study_demo
rm -rf "$STUDY"
python -m padis_plugin.cli.study create --results "${RESULTS[@]}" \
    --solvers "PaDIS S=25 DDS 100" "EDM S=25 DDS 100" Wavelet-L1 \
    --solvers "PaDIS S=25" "EDM S=25" Wavelet-L1 \
    --cases 12 --stratify contrast --seed 0 --out "$STUDY"
LOG=$(mktemp)
python -m padis_plugin.cli.study serve "$STUDY" --port 0 >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 120); do grep -q "serving" "$LOG" && break; sleep 0.5; done
URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$LOG")
python scripts/study_scripted_reader.py "$URL" --reader ssim-reader --rule ssim
python scripts/study_scripted_reader.py "$URL" --reader psnr-reader --rule psnr
kill $SERVER; wait $SERVER 2>/dev/null || true
python -m padis_plugin.cli.study analyze "$STUDY" --method "PaDIS S=25" --out "$REPORT"
