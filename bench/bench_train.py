"""Training-step speed: a plain pix2pixHD-style step vs the `Trainer`'s step, same data and networks.

    python bench/bench_train.py            # small preset, 256 px, batch 1 and 4, medians over interleaved rounds
    python bench/bench_train.py --quick    # fewer rounds, shorter loss-tracking check
    python bench/bench_train.py --compile  # also time the Trainer with torch.compile (slow first step)

(a) baseline: fp32, NCHW, written the way the pix2pixHD scripts do it: G forward, D on the detached fake, D on the
    real pair, D on the fake for G, then G's backward + step, then D's backward + step.
(b) Trainer.train_step: in fp32 at the baseline's objective (no texture loss; target >= 1.0x), in fp32 with the
    package's default objective (+ texture loss; its cost is printed, target <= 10% of the step), and with its
    fastest safe settings on this device (bf16 autocast where native, channels_last on CUDA; target >= 1.15x),
    optionally torch.compile.
Then where the time of a default fp32 step goes: G forward and backward, D (one batched pass over real and fake
pairs) forward and backward, the texture loss, the optimizer steps, and fetching a batch.
Prints images/s, the ratio (b)/(a), achieved GFLOP/s (FLOPs of the baseline step, counted by PyTorch's
FlopCounterMode, per second) against fp32 and bf16 matmul peaks measured in the same run, and a bf16-vs-fp32
loss-curve tracking check. Timings are medians of interleaved rounds (the machine may be shared and noisy).
"""
import argparse, statistics, time, sys, os, tempfile
import torch
from torch.utils.data import default_collate
from torch.utils.flop_counter import FlopCounterMode
from nfp_nb.core import bf16_supported, seed_everything, to_float
from nfp_nb.sample import sample_video
from nfp_nb.models import build_generator, build_discriminator, get_preset
from nfp_nb.losses import GANLoss, feature_matching_loss
from nfp_nb.train import Trainer, TrainConfig

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def matmul_peak(dtype, dev, n=2048, reps=5):
    "Achieved GFLOP/s of an n×n matmul (median of `reps`)."
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    a @ b; sync(dev)
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); a @ b; sync(dev); ts.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(ts) / 1e9

class Baseline:
    "The straightforward pix2pixHD step: fp32, NCHW, three D passes, G step then D step."
    def __init__(self, G, D, lr=2e-4):
        self.G, self.D, self.gan = G, D, GANLoss('lsgan')
        self.opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))

    def step(self, x, y):
        fake = self.G(x)
        pred_fake_pool = self.D(torch.cat([x, fake.detach()], 1))
        loss_D_fake = self.gan(pred_fake_pool, False)
        pred_real = self.D(torch.cat([x, y], 1))
        loss_D_real = self.gan(pred_real, True)
        pred_fake = self.D(torch.cat([x, fake], 1))
        loss_G = self.gan(pred_fake, True, for_discriminator=False) + feature_matching_loss(pred_fake, pred_real, 10.0)
        loss_D = 0.5 * (loss_D_fake + loss_D_real)
        self.opt_G.zero_grad(); loss_G.backward(); self.opt_G.step()
        self.opt_D.zero_grad(); loss_D.backward(); self.opt_D.step()
        return loss_G.item(), loss_D.item()

def make_pair(preset, dev):
    seed_everything(0)
    return build_generator(preset.generator).to(dev), build_discriminator(preset.discriminator).to(dev)

def count_flops(fn):
    with FlopCounterMode(display=False) as fc: fn()
    return fc.get_total_flops()

def timed(fn, n, dev):
    ts = []
    for _ in range(n):
        sync(dev); t = time.perf_counter(); fn(); sync(dev); ts.append(time.perf_counter() - t)
    return ts

def track_check(dev, preset_name, size, steps, window=20):
    "Train the same init on the same batches in fp32 and bf16; compare the smoothed G, D and FM curves."
    p = get_preset(preset_name)
    frames = to_float(sample_video(64, size=size, seed=1))
    data = [{'input': frames[i], 'target': frames[i + 1], 'k': 1} for i in range(len(frames) - 1)]
    curves = {}
    for amp in ('off', 'bf16'):
        G, D = make_pair(p, dev)
        tr = Trainer(G, D, data, TrainConfig(batch_size=1, amp=amp, steps=steps, seed=0), tempfile.mkdtemp(), device=dev)
        g = torch.Generator().manual_seed(0); order = torch.randint(0, len(data), (steps,), generator=g).tolist()
        hist = [tr.train_step(default_collate([data[i]])) for i in order]
        curves[amp] = {k: [h[k] for h in hist] for k in ('G', 'D', 'FM')}
    def smooth(v): return [sum(v[max(0, i - window + 1):i + 1]) / len(v[max(0, i - window + 1):i + 1]) for i in range(len(v))]
    out = {}
    for k in ('G', 'D', 'FM'):
        a, b = smooth(curves['off'][k]), smooth(curves['bf16'][k])
        tail = slice(len(a) * 2 // 3, None)
        ma, mb = statistics.mean(a[tail]), statistics.mean(b[tail])
        out[k] = (ma, mb, abs(mb - ma) / max(abs(ma), 1e-8), max(abs(x - y) / max(abs(x), 1e-8) for x, y in zip(a, b)))
    return out

def breakdown(tr, batch, dev, n):
    "Median time of each part of a default fp32 Trainer step, timed on its own with the trainer's networks."
    G, D, tex = tr.G, tr.D, tr.tex
    x, y = batch['input'].to(dev), batch['target'].to(dev)
    def g_fwd():
        with torch.no_grad(): G(x)
    def g_fwd_bwd(): G(x).mean().backward()
    def d_fwd_bwd(): sum(o[-1].mean() for o in D(torch.cat([torch.cat([x, y], 1), torch.cat([x, y], 1)]))).backward()
    fake = y.clone().requires_grad_(True)
    def tex_fwd_bwd(): tex(fake, y).backward()
    def opt(): tr.opt_G.step(); tr.opt_D.step()
    data = [tr.dataset[i % len(tr.dataset)] for i in range(len(batch['input']))]
    def fetch(): default_collate(data)
    parts = {'G forward': g_fwd, 'G forward + backward': g_fwd_bwd, 'D forward + backward (real and fake pairs)': d_fwd_bwd,
             'texture loss forward + backward': tex_fwd_bwd, 'optimizer steps (G and D)': opt, 'collate a batch': fetch}
    for f in parts.values(): f()
    print("  where a default fp32 step's time goes (each part timed alone, median):")
    for name, f in parts.items():
        print(f"    {name:44s} {statistics.median(timed(f, max(3, n), dev)) * 1e3:7.0f} ms")
    G.zero_grad(set_to_none=True); D.zero_grad(set_to_none=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help="fewer rounds and a short tracking check")
    ap.add_argument('--preset', default='small'); ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--batches', type=int, nargs='+', default=[1, 4])
    ap.add_argument('--rounds', type=int, default=None, help="interleaved rounds (default 5, quick 3)")
    ap.add_argument('--steps', type=int, default=None, help="timed steps per round (default 3, quick 2)")
    ap.add_argument('--compile', action='store_true', help="also time the Trainer with torch.compile")
    ap.add_argument('--threads', type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument('--device', default=None)
    ap.add_argument('--track', choices=['auto', 'on', 'off'], default='auto',
                    help="bf16-vs-fp32 loss tracking check; auto: only where bf16 is native")
    ap.add_argument('--track-steps', type=int, default=None, help="steps of the tracking check (default 300, quick 60)")
    ap.add_argument('--track-size', type=int, default=None, help="frame size of the tracking check (default: --size)")
    args = ap.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    dev = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    rounds = args.rounds or (3 if args.quick else 5); nsteps = args.steps or (2 if args.quick else 3)
    p = get_preset(args.preset)
    native = bf16_supported(dev)
    print(f"device {dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else os.cpu_count()} "
          f"{'GPU' if dev.type == 'cuda' else 'CPUs'}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"native bf16: {native}, load avg {os.getloadavg()[0]:.1f}")
    peak32 = matmul_peak(torch.float32, dev)
    peak16 = matmul_peak(torch.bfloat16, dev, n=2048 if native else 512, reps=5 if native else 2)
    print(f"matmul peaks: fp32 {peak32:.1f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s")
    frames = to_float(sample_video(16, size=args.size, seed=0))
    rows = []
    for bs in args.batches:
        data = [{'input': frames[i], 'target': frames[i + 1], 'k': 1} for i in range(len(frames) - 1)]
        batch = default_collate(data[:bs]); x, y = batch['input'].to(dev), batch['target'].to(dev)
        base = Baseline(*make_pair(p, dev))
        variants = {'trainer fp32': dict(amp='off', channels_last=False, lambda_tex=0.0),
                    'trainer fp32 + texture': dict(amp='off', channels_last=False)}
        fast = dict(amp='auto', channels_last=None)
        if native or dev.type == 'cuda': variants['trainer fast (auto)'] = fast
        if dev.type == 'cuda': variants['trainer fp16 + loss scaling'] = dict(amp='fp16', channels_last=None)
        if args.compile: variants['trainer fast + compile'] = dict(fast, compile=True)
        trainers = {n: Trainer(*make_pair(p, dev), data, TrainConfig(batch_size=bs, **kw), tempfile.mkdtemp(), device=dev)
                    for n, kw in variants.items()}
        flops_base = count_flops(lambda: base.step(x, y))
        flops_tr = count_flops(lambda: trainers['trainer fp32'].train_step(batch))
        # warm-up (compile happens here)
        for tr in trainers.values():
            t0 = time.perf_counter(); tr.train_step(batch); tr.train_step(batch); w = time.perf_counter() - t0
            if tr.cfg.compile: print(f"  compile + 2 warm-up steps: {w:.1f} s")
        base.step(x, y)
        times = {n: [] for n in ['baseline', *trainers]}
        for r in range(rounds):
            times['baseline'] += timed(lambda: base.step(x, y), nsteps, dev)
            for n, tr in trainers.items(): times[n] += timed(lambda: tr.train_step(batch), nsteps, dev)
        med = {n: statistics.median(v) for n, v in times.items()}
        print(f"\nbatch {bs}, {args.preset} preset, {args.size} px: FLOPs per step baseline {flops_base / 1e9:.1f} G, "
              f"trainer {flops_tr / 1e9:.1f} G ({flops_tr / flops_base:.2f}x: one batched D pass, no D weight grads in G's pass)")
        print(f"  {'variant':28s} {'ms/step':>9s} {'img/s':>7s} {'vs (a)':>7s} {'GFLOP/s':>8s} {'%fp32pk':>8s} {'%bf16pk':>8s}  (spread)")
        for n, m in med.items():
            gf = flops_base / m / 1e9
            spread = f"{min(times[n]) * 1e3:.0f}-{max(times[n]) * 1e3:.0f} ms"
            print(f"  {n:28s} {m * 1e3:9.0f} {bs / m:7.2f} {med['baseline'] / m:7.2f} {gf:8.1f} {100 * gf / peak32:7.0f}% "
                  f"{100 * gf / peak16:7.0f}%  ({spread})")
            rows.append((bs, n, bs / m, med['baseline'] / m))
        tex = med['trainer fp32 + texture'] - med['trainer fp32']
        print(f"  texture loss: {tex * 1e3:.0f} ms = {100 * tex / med['trainer fp32 + texture']:.0f}% of a default fp32 step "
              f"(target <= 10%: {'holds' if tex <= 0.1 * med['trainer fp32 + texture'] else 'MISSED'})")
        if bs == args.batches[0]: breakdown(trainers['trainer fp32 + texture'], batch, dev, rounds * nsteps)
    best = {}
    for bs, n, ips, ratio in rows:
        if n not in ('baseline', 'trainer fp32') and ratio > best.get(bs, ('', 0))[1]: best[bs] = (n, ratio)
    ok = lambda r, t: 'holds' if r >= t else 'MISSED'
    print("\n(b)/(a) with the Trainer's fastest setting, default objective (target >= 1.15): " +
          ", ".join(f"batch {bs}: {r:.2f} ({n}; {ok(r, 1.15)})" for bs, (n, r) in best.items()))
    print("(b)/(a) in pure fp32 at the baseline's objective (target >= 1.0): " +
          ", ".join(f"batch {bs}: {r:.2f} ({ok(r, 1.0)})" for bs, n, _, r in rows if n == 'trainer fp32'))
    if args.track == 'off' or (args.track == 'auto' and not native):
        print(f"\nbf16 tracking check skipped: bf16 is {'native' if native else 'NOT native (emulated, very slow)'} on {dev}; "
              "`--track on` forces it")
        return
    ts = args.track_steps or (60 if args.quick else 300); sz = args.track_size or args.size
    t0 = time.perf_counter()
    res = track_check(dev, args.preset, sz, ts)
    print(f"\nbf16 vs fp32 loss curves, {ts} steps at {sz} px ({time.perf_counter() - t0:.0f} s), "
          f"moving average of 20 steps, last third:")
    ok = True
    for k, (ma, mb, rel, mx) in res.items():
        good = rel < 0.15; ok &= good
        print(f"  {k:3s} fp32 {ma:8.4f}  bf16 {mb:8.4f}  rel. diff {rel:6.1%}  (max along the curve {mx:6.1%})  {'ok' if good else 'DIFFERS'}")
    print("bf16 tracks fp32" if ok else "bf16 does NOT track fp32 within 15%")

if __name__ == '__main__': main()
