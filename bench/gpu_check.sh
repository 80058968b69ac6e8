#!/usr/bin/env bash
# The GPU checks, as one script a session with a lent GPU runs in about ten minutes (no GPU has been lent to
# this project yet, so none of these numbers exists). Everything it prints and writes goes under OUT.
#
#   bash bench/gpu_check.sh [OUT]          # OUT defaults to $OUT (the device tool's folder) or runs/gpu_check
#   QUICK=1 bash bench/gpu_check.sh OUT    # a one-minute smoke run of the same steps (also works on a CPU)
#
# 1. what the machine is; 2. a Trainer step against the plain pix2pixHD step (bench_train); 3. the quality benchmark on the built-in sample at 256 px with a GPU-sized budget, so the
# docs can state a measured GPU quality and time instead of an estimate.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-runs/gpu_check}}
mkdir -p "$out"
dev=$(python -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
quick=${QUICK:-0}
log() { echo "gpu_check: $*" | tee -a "$out/log.txt"; }
log "device $dev, quick=$quick, $(date -u +%FT%TZ)"
python - >"$out/machine.txt" 2>&1 <<'EOF'
import torch, platform
print('torch', torch.__version__, 'python', platform.python_version())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print('gpu', p.name, f'{p.total_memory / 2**30:.0f} GiB', 'bf16', torch.cuda.is_bf16_supported())
print('cpu capability', torch.backends.cpu.get_cpu_capability())
EOF
cat "$out/machine.txt" | tee -a "$out/log.txt"
if [ "$quick" = 1 ]; then
  train=(--quick --device "$dev"); qual=(--quick --device "$dev")
else
  train=(--device "$dev" --size 512 --batches 1 4)
  qual=(--device "$dev" --size 256 --budget 6000 --sources sample,lava,stone --others '[AB]')
fi
log "bench_train ${train[*]}";   timeout 240 python bench/bench_train.py "${train[@]}" 2>&1 | tee "$out/bench_train.txt" | tail -5
log "bench_quality ${qual[*]}";  timeout 420 python bench/bench_quality.py "${qual[@]}" --out "$out/quality" 2>&1 | tee "$out/bench_quality.txt" | tail -8
log "done: results in $out"
