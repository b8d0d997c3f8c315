#!/usr/bin/env bash
# Issue 16 on a GPU: the paper's CamVid schedule, 360x480 and 150 epochs of the half-labeled set (133 labeled-drive
# frames, 16 steps of 8 an epoch = 2400 steps), supervised + --strong-aug against weak-strong at the same 2400 steps,
# on the new-drive protocol of camvid_ssl.py. The two arms of a seed train side by side on the one GPU (the 2.1M
# segmenter leaves most of it idle); seed 1 follows when seed 0 left room for it inside BUDGET_S seconds, so the
# script fits a short GPU loan (AMP is on by default on CUDA). Resumable like camvid_ssl.py: run it again after an
# interruption.
#
#   benchmarks/camvid_ssl_gpu.sh ../shared/datasets/camvid [BUDGET_S]
set -uo pipefail
camvid=${1:?usage: $0 CAMVID_DIR [BUDGET_S]}
budget=${2:-900}
here=$(dirname "$0")
python=${PYTHON:-$(command -v python3)}
[ -x .venv/bin/python ] && python=.venv/bin/python
runs=runs/bench/ssl-gpu
common=(--camvid "$camvid" --steps 2400 --scale 360x480 --fractions 0.5 --runs "$runs"
        --out "$here/results/camvid_ssl_gpu")
mkdir -p "$runs"
start=$SECONDS

pair() {  # seed $1: both core arms at once, stopped after $2 seconds (they resume on the next call)
    for arm in supervised-strong weak-strong; do
        timeout "$2" "$python" "$here/camvid_ssl.py" "${common[@]}" --workers 6 --arms "$arm" --seeds "$1" \
            >"$runs/log_${arm}_s$1.txt" 2>&1 &
    done
    wait
    tail -n 3 "$runs"/log_*_s"$1".txt
}

pair 0 "$budget"
used=$((SECONDS - start))
echo "seed 0: ${used} s"
if ((2 * used + 30 < budget)); then
    pair 1 $((budget - used))
    echo "seed 1: $((SECONDS - start - used)) s"
fi
"$python" "$here/camvid_ssl.py" "${common[@]}" --arms supervised-strong,weak-strong --seeds 0,1 --report
