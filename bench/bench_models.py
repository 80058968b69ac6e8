"""Generator forward speed as a fraction of this machine's matmul peaks.

Measures fp32 and bf16 matmul peaks (GFLOP/s) in the same run, then the forward throughput of the `small` and
`default` preset generators at 256 px under `torch.inference_mode` in three settings (fp32 NCHW, fp32
channels_last, bf16 autocast), printing GFLOP/s, frames/s and the fraction of the matching peak. Medians of
several repeats (shared machines are noisy). Not a test: it prints numbers, it asserts nothing.

    python bench/bench_models.py --quick            # ~1-2 minutes on a 2-core CPU
    python bench/bench_models.py --device cuda
"""
import argparse, statistics, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing
from nfp_nb.core import as_device, bf16_supported, to_uint8
from nfp_nb.models import build_generator, get_preset, model_summary
from nfp_nb.core import inference_settings
from nfp_nb.core import autocast


def _sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


def timeit(fn, dev, reps, warmup=1):
    "Median seconds of `fn()` over `reps` runs after `warmup` runs."
    for _ in range(warmup): fn()
    _sync(dev)
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); _sync(dev); ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def matmul_peak(dev, dtype, n, reps):
    "GFLOP/s of an n×n by n×n matmul in `dtype` (median)."
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    with torch.inference_mode(): s = timeit(lambda: a @ b, dev, reps, warmup=2)
    return 2 * n**3 / s / 1e9


def bench_generator(name, size, dev, reps, bf16=True):
    cfg = get_preset(name).generator
    gflop = model_summary(cfg, size)['gflops']
    g = build_generator(cfg).to(dev).eval()
    x = torch.rand(1, 3, size, size, device=dev) * 2 - 1
    rows, ref = [], None
    for label, dtype, fmt in [('fp32 NCHW', torch.float32, torch.contiguous_format),
                              ('fp32 channels_last', torch.float32, torch.channels_last),
                              ('bf16 autocast', torch.bfloat16, torch.contiguous_format)][:3 if bf16 else 2]:
        gm, xm = g.to(memory_format=fmt), x.contiguous(memory_format=fmt)
        def fwd():
            with torch.inference_mode(), autocast(dev, dtype): return gm(xm)
        s = timeit(fwd, dev, reps)
        y = to_uint8(fwd()).int()
        if ref is None: ref = y
        rows.append((label, dtype, s, gflop / s, (y - ref).abs().max().item()))
    return gflop, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default=None, help="cpu or cuda (default: the fastest available)")
    ap.add_argument('--quick', action='store_true', help="fewer repeats and a smaller matmul")
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--presets', default='small,default')
    ap.add_argument('--force-bf16', action='store_true', help="time bf16 forwards even where bf16 is emulated (very slow)")
    args = ap.parse_args()
    dev = as_device(args.device)
    reps = 3 if args.quick else 7
    n = (1024 if dev.type == 'cpu' else 4096) if args.quick else (2048 if dev.type == 'cpu' else 8192)
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {dev} ({name}); torch {torch.__version__}; native bf16: {bf16_supported(dev)}; "
          f"inference_settings -> {inference_settings(dev)}")
    peaks = {torch.float32: matmul_peak(dev, torch.float32, n, reps * 2),
             torch.bfloat16: matmul_peak(dev, torch.bfloat16, n, reps * 2)}
    print(f"matmul {n}×{n}: fp32 peak {peaks[torch.float32]:.1f} GFLOP/s, bf16 peak {peaks[torch.bfloat16]:.1f} GFLOP/s "
          f"(bf16/fp32 {peaks[torch.bfloat16] / peaks[torch.float32]:.2f}×)", flush=True)
    do_bf16 = args.force_bf16 or bf16_supported(dev)
    if not do_bf16: print("bf16 forwards skipped: this device has no native bf16 (emulated bf16 is far slower; --force-bf16 to time it)")
    for preset in args.presets.split(','):
        gflop, rows = bench_generator(preset, args.size, dev, reps, do_bf16)
        print(f"\n{preset} generator at {args.size}px: {gflop:.1f} GFLOP/frame (median of {reps})")
        print(f"  {'setting':20s} {'ms/frame':>9s} {'frames/s':>9s} {'GFLOP/s':>8s} {'of peak':>8s} {'vs fp32':>8s} {'max Δ uint8':>11s}")
        base = rows[0][3]
        for label, dtype, s, gfs, d in rows:
            print(f"  {label:20s} {s*1e3:9.0f} {1/s:9.2f} {gfs:8.0f} {gfs/peaks[dtype]:8.0%} {gfs/base:7.2f}× {d:11d}", flush=True)


if __name__ == '__main__': main()
