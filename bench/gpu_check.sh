#!/usr/bin/env bash
# The GPU checks, as one script a session with a lent GPU runs in under about eight minutes (no GPU has been lent
# to this project yet, so none of these numbers exists). Everything it prints and writes goes under OUT.
#
#   bash bench/gpu_check.sh [OUT]          # OUT defaults to $OUT (the device tool's folder) or runs/gpu_check
#   QUICK=1 bash bench/gpu_check.sh OUT    # a smoke run of the same steps at tiny sizes (also works on a CPU)
#
# 1. the machine (GPU, bf16 native or not); 2. Trainer steps against the plain pix2pixHD step: fp32, the default
# objective, bf16/auto and fp16 with loss scaling, and torch.compile (bench_train); 3. rollout frames/s at 256, 512
# and 1024 px, eager and compiled; 4. the documented `nfp_train --net B --workers 4` line (pre-renders on a GPU),
# and B's step against A's (bench_restorer);
# 5. NCCL DDP through `nfp_train --nproc-per-node N` when there are two or more GPUs; 6. a short quality run.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-runs/gpu_check}}
mkdir -p "$out"
dev=$(python -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
ngpu=$(python -c "import torch; print(torch.cuda.device_count())")
quick=${QUICK:-0}
log() { echo "gpu_check: $*" | tee -a "$out/log.txt"; }
log "device $dev ($ngpu GPUs), quick=$quick, $(date -u +%FT%TZ)"
python - >"$out/machine.txt" 2>&1 <<'PY'
import torch, platform
from nfp_nb.core import bf16_supported, resolve_dtype
print('torch', torch.__version__, 'python', platform.python_version())
dev = 'cuda' if torch.cuda.is_available() else 'cpu'
if dev == 'cuda':
    p = torch.cuda.get_device_properties(0)
    print('gpu', p.name, f'{p.total_memory / 2**30:.0f} GiB', 'capability', f'{p.major}.{p.minor}')
print('bf16 native:', bf16_supported(dev), '| training and rollout dtype (auto):', resolve_dtype('auto', dev))
print('cpu capability', torch.backends.cpu.get_cpu_capability())
PY
cat "$out/machine.txt" | tee -a "$out/log.txt"
if [ "$quick" = 1 ]; then
  train=(--quick --device "$dev" --size 64 --batches 1); sizes="64 128"; preset=tiny; steps=20
  qual=(--quick --device "$dev")
else
  train=(--device "$dev" --size 512 --batches 1 4 --compile --rounds 3); sizes="256 512 1024"; preset=small; steps=100
  qual=(--device "$dev" --size 256 --budget 3000 --sources sample --others none)
fi
log "2. bench_train ${train[*]}"
timeout 200 python bench/bench_train.py "${train[@]}" 2>&1 | tee "$out/bench_train.txt" | tail -14
log "3. rollout frames/s at $sizes px ($preset preset, $steps steps, eager and compiled)"
timeout 110 python - "$dev" "$preset" "$steps" $sizes 2>&1 <<'PY' | tee "$out/rollout_fps.txt"
import sys, time, torch
from nfp_nb.models import build_generator, get_preset
from nfp_nb.render import render_video
dev, preset, steps, sizes = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(s) for s in sys.argv[4:]]
G = build_generator(get_preset(preset).generator).eval()
for size in sizes:
    for compile in (False, True):
        t = time.perf_counter()
        res = render_video(None, 'noise', G, 'A', steps, size=size, device=dev, compile=compile)
        print(f"{size:5d} px  {'compiled' if compile else 'eager   '}  {res['fps']:8.1f} frames/s in the loop, "
              f"{steps / (time.perf_counter() - t):8.1f} frames/s with warm-up", flush=True)
PY
log "4. nfp_train --net B --workers 4 (the documented line)"
run="$out/run"; rm -rf "$run"
( nfp_prep --run "$run" --size 64 --max-frames 40 --quiet \
  && nfp_train --run "$run" --net A --preset tiny --steps 20 --quiet \
  && timeout 90 nfp_train --run "$run" --net B --preset tiny --steps 20 --workers 4 ) 2>&1 | tee "$out/b_workers.txt" | tail -3
log "   exit status ${PIPESTATUS[0]}"
log "4b. B's training step against A's, pre-rendered against online (bench_restorer --quick)"
timeout 90 python bench/bench_restorer.py --quick --device "$dev" 2>&1 | tee "$out/bench_restorer.txt" | tail -9
if [ "$ngpu" -ge 2 ]; then
  log "5. DDP (NCCL): nfp_train --nproc-per-node $ngpu"
  timeout 120 nfp_train --run "$run" --net A --preset tiny --steps 40 --nproc-per-node "$ngpu" 2>&1 | tee "$out/ddp.txt" | tail -3
else
  log "5. DDP skipped: $ngpu GPU(s)"
fi
log "6. bench_quality ${qual[*]}"
timeout 120 python bench/bench_quality.py "${qual[@]}" --out "$out/quality" 2>&1 | tee "$out/bench_quality.txt" | tail -6
log "done: results in $out"
