"""B's inputs: what a restorer (B) training step costs against a predictor (A) step, pre-rendered against online.

1. Prerendering: A run over batches of start frames versus one frame at a time (same run, same A, same code path
   `RestorePairDataset.prerender`, only `batch_size` differs; best of interleaved repeats). Target >= 2x.
2. Steps (`--steps-bench`, on by default, `--no-steps-bench` skips it): the marginal seconds per optimizer step of
   the real `Trainer` (batch fetching included, so online mode pays A's forwards there), measured as
   (time of a long fit - time of a short fit) / (step difference), for A on its pairs, B online and B pre-rendered
   (the one-off prerender timed on its own). It prints B/A per step, online/prerender, the break-even number of B
   steps above which prerendering pays, and whether `restorer.prerender_pays` (the package's default policy for
   `nfp_train --net B`) picks the faster mode for this run, at the run's length `--b-steps` (default: the demo's 600).

    python bench/bench_restorer.py            # small preset, 128 px, 160 frames, n 1..10: the demo's B
    python bench/bench_restorer.py --quick    # tiny preset, 64 px, 48 frames, fewer steps
"""
import argparse, contextlib, io, statistics, tempfile, time
from pathlib import Path
import torch
from nfp_nb.data import FrameStore, PairDataset
from nfp_nb.models import get_preset, build_generator, build_discriminator
from nfp_nb.restorer import RestorePairDataset, prerender_pays
from nfp_nb.train import Trainer, TrainConfig

def prerender_batching(store, A, N, reps, batch_size):
    ds = RestorePairDataset(store, A, n=(1, N), m=(1, 1), mode='online', progress=False)   # same dataset for both
    ds.mode = 'prerender'
    ds.batch_size = 2; ds.prerender(force=True)                                             # warm-up
    best = {}
    for _ in range(reps):
        for bs in (batch_size, 1):
            ds.batch_size = bs; ds.prerender(force=True)
            best[bs] = max(best.get(bs, 0.0), ds.last_render['frames_per_s'])
    for bs in (1, batch_size):
        print(f"  batch {bs:>3}: {best[bs]:8.1f} frames/s")
    ratio = best[batch_size] / best[1]
    print(f"batched / one at a time: {ratio:.2f}x (target >= 2x: {'holds' if ratio >= 2 else 'MISSED'})")

def fit_seconds(make_ds, preset, steps, dev, folder):
    "Wall seconds of a fresh `Trainer.fit` of `steps` steps (checkpoint at the end included) on `make_ds()`."
    torch.manual_seed(0)
    G, D = build_generator(preset.generator), build_discriminator(preset.discriminator)
    cfg = TrainConfig(steps=steps, batch_size=preset.batch_size, lr=preset.lr, lambda_tex=preset.lambda_tex,
                      save_every=0, sample_every=0, seed=0)
    tr = Trainer(G, D, make_ds(), cfg, tempfile.mkdtemp(dir=folder), 'X', device=dev)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()): tr.fit(show=False)
    return time.perf_counter() - t0

def step_seconds(make_ds, preset, short, long, reps, dev, folder):
    "Marginal seconds per step: median over `reps` of (fit(long) - fit(short)) / (long - short)."
    fit_seconds(make_ds, preset, 2, dev, folder)                                            # warm-up
    return statistics.median((fit_seconds(make_ds, preset, long, dev, folder) - fit_seconds(make_ds, preset, short, dev, folder))
                             / (long - short) for _ in range(reps))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help="tiny preset, 64 px, 48 frames, fewer steps")
    p.add_argument('--size', type=int); p.add_argument('--frames', type=int); p.add_argument('--n', type=int)
    p.add_argument('--batch-size', type=int, default=16, help="frames per forward in the batched prerender")
    p.add_argument('--preset')
    p.add_argument('--repeats', type=int)
    p.add_argument('--b-steps', type=int, default=600, help="the B run the policy is judged for (default: the demo's 600 steps)")
    p.add_argument('--steps-bench', action=argparse.BooleanOptionalAction, default=True, help="time training steps (part 2)")
    p.add_argument('--threads', type=int, help="torch threads (default: torch's)")
    p.add_argument('--device', default='cpu')
    a = p.parse_args()
    size, frames, N, reps, preset = (64, 48, 10, 2, 'tiny') if a.quick else (128, 160, 10, 3, 'small')
    size, frames, N, reps, preset = a.size or size, a.frames or frames, a.n or N, a.repeats or reps, a.preset or preset
    if a.threads: torch.set_num_threads(a.threads)
    folder = Path(tempfile.mkdtemp(prefix='bench_restorer_'))
    store = FrameStore.prepare(None, run=folder / 'run', size=size, max_frames=frames, progress=False)
    P = get_preset(preset)
    torch.manual_seed(0)
    A = build_generator(P.generator).to(a.device).eval()
    print(f"{frames} frames at {size}×{size}, preset {preset} (batch size {P.batch_size}), n 1..{N}, device {a.device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"\n1. prerender A^1..A^{N}, {reps} interleaved repeats (best kept)")
    prerender_batching(store, A, N, reps, a.batch_size)
    if not a.steps_bench: return
    short, long = (4, 24) if a.quick else (5, 30)
    print(f"\n2. seconds per training step (fit of {long} steps - fit of {short}, median of {reps}), batch fetching included")
    kw = dict(n=(1, N), m=(1, N), progress=False, cache_dir=folder / 'cache')
    t0 = time.perf_counter(); pre = RestorePairDataset(store, A, mode='prerender', **kw); render_s = time.perf_counter() - t0
    s = {'A': step_seconds(lambda: PairDataset(store, skip=(1, 1)), P, short, long, reps, a.device, folder),
         'B online': step_seconds(lambda: RestorePairDataset(store, A, mode='online', **kw), P, short, long, reps, a.device, folder),
         'B prerendered': step_seconds(lambda: RestorePairDataset(store, A, mode='prerender', **kw), P, short, long, reps, a.device, folder)}
    for k, v in s.items(): print(f"  {k:14s} {v * 1e3:8.0f} ms/step   ({v / s['A']:.2f}x an A step)")
    print(f"  prerender of A^1..A^{N} for {len(store)} frames: {render_s:.1f} s once ({pre.cache_path.stat().st_size / 1e6:.0f} MB on disk)")
    gain = s['B online'] - s['B prerendered']
    even = render_s / gain if gain > 0 else float('inf')
    print(f"  online / prerendered per step: {s['B online'] / s['B prerendered']:.2f}x; prerendering pays after {even:.0f} B steps")
    for steps in sorted({a.b_steps, int(even) // 2 or 1, 4 * int(even) if even < 1e9 else a.b_steps}):
        t_on, t_pre = steps * s['B online'], render_s + steps * s['B prerendered']
        faster = 'prerender' if t_pre < t_on else 'online'
        pick = 'prerender' if prerender_pays((1, N), len(pre), steps, P.batch_size) else 'online'
        print(f"  a B run of {steps:>5} steps: online {t_on:7.0f} s, prerendered {t_pre:7.0f} s ({t_on / t_pre:.2f}x) -> faster: {faster}; "
              f"prerender_pays picks {pick} ({'holds' if pick == faster or abs(t_on - t_pre) < 0.1 * min(t_on, t_pre) else 'MISSED'})")

if __name__ == '__main__': main()
