"""Prerendering B's inputs: A run over batches of start frames versus one frame at a time.

Same run (the sample clip), same predictor A (the `small` preset's generator), same code path
(`RestorePairDataset.prerender`), only `batch_size` differs. Each setting is timed several times,
interleaved, and the best run of each is kept (the machine may be shared). Prints frames/s and the ratio.

    python bench/bench_restorer.py            # 128 px, 48 frames, N = 4
    python bench/bench_restorer.py --quick    # 64 px, 24 frames, N = 3
"""
import argparse, tempfile, time
from pathlib import Path
import torch
from nfp_nb.data import FrameStore
from nfp_nb.models import get_preset, build_generator
from nfp_nb.restorer import RestorePairDataset

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help="64 px, 24 frames, N = 3, 2 repeats")
    p.add_argument('--size', type=int); p.add_argument('--frames', type=int); p.add_argument('--n', type=int)
    p.add_argument('--batch-size', type=int, default=16, help="frames per forward in the batched run")
    p.add_argument('--preset', default='small')
    p.add_argument('--repeats', type=int)
    p.add_argument('--threads', type=int, help="torch threads (default: torch's)")
    p.add_argument('--device', default='cpu')
    a = p.parse_args()
    size, frames, N, reps = (64, 24, 3, 2) if a.quick else (128, 48, 4, 3)
    size, frames, N, reps = a.size or size, a.frames or frames, a.n or N, a.repeats or reps
    if a.threads: torch.set_num_threads(a.threads)
    run = Path(tempfile.mkdtemp(prefix='bench_restorer_'))
    store = FrameStore.prepare(None, run=run, size=size, max_frames=frames, progress=False)
    torch.manual_seed(0)
    A = build_generator(get_preset(a.preset).generator).to(a.device)
    ds = RestorePairDataset(store, A, n=(1, N), m=(1, 1), mode='online', progress=False)   # same dataset for both
    ds.mode = 'prerender'
    print(f"prerender A^1..A^{N} of {frames} frames at {size}×{size}, preset {a.preset}, device {a.device}, "
          f"torch threads {torch.get_num_threads()}, {reps} interleaved repeats (best kept)")
    ds.batch_size = 2; ds.prerender(force=True)                                             # warm-up
    best = {}
    for _ in range(reps):
        for bs in (a.batch_size, 1):
            ds.batch_size = bs; ds.prerender(force=True)
            best[bs] = max(best.get(bs, 0.0), ds.last_render['frames_per_s'])
    for bs in (1, a.batch_size):
        print(f"  batch {bs:>3}: {best[bs]:8.1f} frames/s")
    ratio = best[a.batch_size] / best[1]
    print(f"batched / one at a time: {ratio:.2f}x (target >= 2x: {'holds' if ratio >= 2 else 'MISSED'})")

if __name__ == '__main__': main()
