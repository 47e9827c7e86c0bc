#!/usr/bin/env bash
# Demonstration of padis-study (a demonstration of the tool, not a clinical result): a blinded 3-way study
# (CASES cases, default 8) built from saved bench reconstructions, answered by two scripted readers whose rule
# is stated (highest SSIM / highest PSNR of the served image to the served reference), then unblinded.
#
#   scripts/demo_study.sh [RESULTS_DIR ...]
#
# Default input: the reconstructions of experiments/256_hfs (256 protocol, test patients, the Table-5
# analogue's S = 25 methods: PaDIS and EDM with DDS 50, Wavelet-L1; 12 slices x R = 4, 7 = 24 cases, of
# which CASES are drawn; the committed report was made when the config had its first 4 slices, 8 cases).
# recons/ is not committed: run that bench first (experiments/256_hfs/config.yaml) if it is missing. Other
# folders need the same solver labels (or edit --solvers below). References come from
# recons/<slice>/reference.npy or the prepared data file named in results.json (outputs/protocol*/prepared_*.h5).
# Writes the study to outputs/study_demo/ and the report to experiments/study_demo/.
# ("python -m padis_plugin.cli.study" is the padis-study console script, with the package importable.)
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=("$@")
[ ${#RESULTS[@]} -gt 0 ] || RESULTS=(experiments/256_hfs)
STUDY=outputs/study_demo
REPORT=experiments/study_demo
rm -rf "$STUDY"
python -m padis_plugin.cli.study create --results "${RESULTS[@]}" \
    --solvers "PaDIS S=25" "EDM S=25" Wavelet-L1 \
    --cases "${CASES:-8}" --stratify contrast,R --seed 0 --out "$STUDY"
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
