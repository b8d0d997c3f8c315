#!/usr/bin/env bash
# Issue 16 on a GPU: the paper's CamVid schedule, 360x480 and 150 epochs of the half-labeled set (133 labeled-drive
# frames, 16 steps of 8 a epoch = 2400 steps), supervised + --strong-aug against weak-strong at the same 2400 steps,
# seed 0, on the new-drive protocol of camvid_ssl.py. Sized for about 8 minutes of an H100/H200 (AMP is on by
# default on CUDA). Resumable like camvid_ssl.py: run it again after an interruption.
#
#   benchmarks/camvid_ssl_gpu.sh ../shared/datasets/camvid
set -euo pipefail
camvid=${1:?usage: $0 CAMVID_DIR}
here=$(dirname "$0")
python=${PYTHON:-$(command -v python3)}
[ -x .venv/bin/python ] && python=.venv/bin/python
exec "$python" "$here/camvid_ssl.py" --camvid "$camvid" --steps 2400 --scale 360x480 --workers 8 \
    --arms supervised-strong,weak-strong --fractions 0.5 --seeds 0 \
    --runs runs/bench/ssl-gpu --out "$here/results/camvid_ssl_gpu"
