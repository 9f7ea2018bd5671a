#!/usr/bin/env bash
# One short check of the CUDA path on a GPU machine (about 8 minutes on one H100): the CUDA unit
# tests, the smoke preset end to end on the GPU, and training / attack throughput of the default
# architectures. Run from the repository root after `make` has built .venv; prints figures,
# writes the smoke run's report under $OUT (default /tmp/robustlab-gpu) and asserts nothing
# beyond what the tests assert.
#
#     bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/robustlab-gpu}
mkdir -p "$out"
py=.venv/bin/python
export PATH=$PWD/.venv/bin:$PATH

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
    'bf16', torch.cuda.is_bf16_supported())"

echo "== CUDA unit tests (bf16 + channels_last training step of every architecture)"
$py -m pytest -q tests/test_models_zoo.py -k cuda

echo "== smoke preset on the GPU (training, attacks, report)"
work=$(mktemp -d)
git archive HEAD | tar -x -C "$work"
ln -s "$PWD/.venv" "$work/.venv"
(cd "$work" && time snakemake --configfile presets/smoke.yaml --cores 4 --quiet rules)
cp "$work/reports/metrics.json" "$work/reports/index.html" "$out/" 2>/dev/null || true
grep -h "amp_used" "$work"/models/*/*/*/card.json | sort | uniq -c

echo "== training and attack-step throughput of the default grid (one GPU)"
$py bench/hardware_efficiency.py --device cuda --steps 10
