"""Rollout speed and memory: the naive PNG loop vs bare forwards vs `rollout` writing an mp4.

    python bench/bench_rollout.py            # small preset, 256 px, 100 steps, 3 repeats; RSS 1,000 vs 4,000 steps
    python bench/bench_rollout.py --quick    # 64 px tiny net, 20 steps, 1 repeat; RSS 200 vs 800 steps

(a) the loop this replaces: each step saves the frame as PNG and loads it back as the next input; the
    model runs in fp32 with autograd on (no inference mode).
(b) the generator's bare forward passes alone (output fed back), no I/O, in the precision of (c).
(c) `render_video`: `rollout` streaming to an mp4, encoder in a background thread.
Prints frames/s (median over repeats, interleaved so load changes hit all three alike) and the ratios
(c)/(a) and (c)/(b); then peak RSS of two subprocess rollouts of different lengths (it must not grow).
The machine is shared: read medians, and compare only numbers from one run.
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

def build(preset, seed=0):
    from nfp_nb.models import build_generator, get_preset
    torch.manual_seed(seed)
    return build_generator(get_preset(preset).generator).eval()

def start_frame(size, seed=0):
    from nfp_nb.sample import sample_video
    return sample_video(n_frames=1, size=size, seed=seed)[0]

def naive_loop(G, frame, steps, folder):
    "(a) PNG round trip every step, fp32, autograd on."
    from nfp_nb.core import to_float, to_uint8
    p = Path(folder) / 'frame.png'
    Image.fromarray(frame).save(p)
    t, c = time.perf_counter(), time.process_time()
    for i in range(steps):
        x = to_float(np.array(Image.open(p).convert('RGB')))[None]
        y = G(x)                                        # autograd graph built, as in a training-style script
        Image.fromarray(to_uint8(y)[0].numpy()).save(Path(folder) / f'{i:05d}.png')
        p = Path(folder) / f'{i:05d}.png'
    return steps / (time.perf_counter() - t), steps / (time.process_time() - c)

def bare(G, frame, steps, dtype, channels_last=False):
    "(b) forwards alone, output fed back, inference mode, precision of (c)."
    from nfp_nb.core import to_float
    x = to_float(frame)[None]
    if channels_last: G = G.to(memory_format=torch.channels_last); x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast('cpu', dtype=dtype, enabled=dtype != torch.float32):
        G(x)                                            # warm-up (oneDNN primitives)
        t, c = time.perf_counter(), time.process_time()
        for _ in range(steps):
            x = G(x).float()
            if channels_last: x = x.contiguous(memory_format=torch.channels_last)
        fps = steps / (time.perf_counter() - t), steps / (time.process_time() - c)
    if channels_last: G.to(memory_format=torch.contiguous_format)
    return fps

def ours(G, frame, steps, folder, **kw):
    "(c) `render_video`: rollout → mp4."
    from nfp_nb.render import render_video
    render_video(Path(folder) / 'warm.mp4', frame, G, steps=2, **kw)
    t, c = time.perf_counter(), time.process_time()
    render_video(Path(folder) / 'out.mp4', frame, G, steps=steps, chunk=16, **kw)
    return steps / (time.perf_counter() - t), steps / (time.process_time() - c)

RSS_CHILD = r'''
import sys, resource, tempfile, torch
sys.path.insert(0, {root!r})
torch.set_num_threads({threads})
from nfp_nb.models import build_generator, get_preset
from nfp_nb.render import render_video
torch.manual_seed(0)
G = build_generator(get_preset({preset!r}).generator).eval()
d = tempfile.mkdtemp()
res = render_video(d + '/long.mp4', 'noise', G, steps={steps}, size={size}, chunk=16)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, res['fps'])
'''

def rss_run(steps, size, preset, threads):
    code = RSS_CHILD.format(root=str(Path(__file__).resolve().parents[1]), steps=steps, size=size, preset=preset, threads=threads)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    if r.returncode: raise SystemExit(r.stderr)
    mb, fps = map(float, r.stdout.split()[-2:])
    return mb, fps

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='tiny net at 64 px, 20 steps, 1 repeat, RSS 200 vs 800 steps')
    p.add_argument('--preset', default=None); p.add_argument('--size', type=int, default=None)
    p.add_argument('--steps', type=int, default=None); p.add_argument('--repeats', type=int, default=None)
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    p.add_argument('--rss-steps', type=int, nargs=2, default=None, metavar=('SHORT', 'LONG'))
    p.add_argument('--rss-size', type=int, default=128, help='frame size of the RSS runs (tiny net)')
    p.add_argument('--channels-last', action='store_true', help='also time (b) with channels_last')
    p.add_argument('--compile', action='store_true', help='also time (c) with torch.compile: warm-up, speed-up and the break-even length')
    p.add_argument('--no-rss', action='store_true')
    p.add_argument('--rss-only', action='store_true', help='only the memory check')
    a = p.parse_args()
    preset = a.preset or ('tiny' if a.quick else 'small'); size = a.size or (64 if a.quick else 256)
    steps = a.steps or (20 if a.quick else 100); reps = a.repeats or (1 if a.quick else 3)
    rss_steps = a.rss_steps or ([200, 800] if a.quick else [1000, 4000])
    if a.threads: torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    from nfp_nb.core import bf16_supported
    from nfp_nb.core import resolve_dtype
    dtype = resolve_dtype('auto', 'cpu')
    if a.rss_only: return rss_report(rss_steps, a.rss_size, torch.get_num_threads())
    G, frame = build(preset), start_frame(size)
    print(f"# {preset} generator, {size} px, {steps} steps, {reps} repeats, {threads} torch threads, "
          f"bf16 native: {bf16_supported('cpu')} → rollout dtype {str(dtype).split('.')[-1]}, load avg {os.getloadavg()[0]:.1f}")
    res = {'a': [], 'b': [], 'c': [], 'b_cl': [], 'c_compile': []}
    with tempfile.TemporaryDirectory() as d:
        for r in range(reps):
            res['a'].append(naive_loop(G, frame, steps, d))
            res['b'].append(bare(G, frame, steps, dtype))
            res['c'].append(ours(G, frame, steps, d, compile=False))
            if a.channels_last: res['b_cl'].append(bare(G, frame, steps, dtype, channels_last=True))
            print(f"  repeat {r}: " + ', '.join(f"{k} {v[-1][0]:.2f} ({v[-1][1]:.2f} CPU)" for k, v in res.items() if v) + ' frames/s', flush=True)
        if a.compile:
            from nfp_nb.render import render_video
            # cold: an empty inductor cache, as in a fresh environment (the first render of an architecture and size)
            os.environ['TORCHINDUCTOR_CACHE_DIR'] = tempfile.mkdtemp(prefix='inductor_cold_')
            t = time.perf_counter(); render_video(Path(d) / 'warm.mp4', frame, G, steps=2, compile=True)
            warm = time.perf_counter() - t                                       # the compile itself
            res['c_compile'].append(ours(G, frame, steps, d, compile=True))      # steady state (graphs cached)
            torch._dynamo.reset()                                                # warm: the same compile again, cache on disk
            t = time.perf_counter(); render_video(Path(d) / 'warm.mp4', frame, G, steps=2, compile=True)
            warm2 = time.perf_counter() - t
            print(f"  compile warm-up {warm:.1f} s with an empty inductor cache, {warm2:.1f} s with it filled")
    med = {k: statistics.median(v[0] for v in vs) for k, vs in res.items() if vs}
    cpu = {k: statistics.median(v[1] for v in vs) for k, vs in res.items() if vs}
    dt = str(dtype).split('.')[-1]
    rows = [('a', 'naive PNG loop, fp32, autograd'), ('b', f'bare forwards ({dt})'), ('b_cl', 'bare forwards, channels_last'),
            ('c', 'rollout → mp4'), ('c_compile', 'rollout → mp4, torch.compile')]
    print(f"{'':38s} {'wall':>8s} {'CPU-time':>9s}  frames/s (CPU-time: per second of this process's CPU, all threads)")
    for k, label in rows:
        if k in med: print(f"({k}) {label:33s} {med[k]:8.2f} {cpu[k]:9.2f}")
    for name, m in (('wall', med), ('CPU-time', cpu)):
        ca, cb = m['c'] / m['a'], m['c'] / m['b']
        hold = lambda ok: 'holds' if ok else 'MISSED'
        print(f"{name:8s}: (c)/(a) = {ca:.2f} (target ≥ 1.7 with bf16: {hold(ca >= 1.7)})   (c)/(b) = {cb:.2f} (target ≥ 0.9: {hold(cb >= 0.9)})"
              + (f"   (b_cl)/(b) = {m['b_cl'] / m['b']:.2f}" if 'b_cl' in m else ''))
    if 'c_compile' in med:
        from nfp_nb.rollout import COMPILE_BREAK_EVEN
        gain = 1 / med['c'] - 1 / med['c_compile']                                # seconds saved per frame
        be = warm / gain if gain > 0 else float('inf')
        print(f"compile, cache filled (a later render of the same network and size): break-even {(warm2 / gain if gain > 0 else float('inf')):.0f} frames at {size} px")
        print(f"compile: {med['c_compile'] / med['c']:.2f}x the eager rollout after a {warm:.1f} s warm-up (empty cache); break-even "
              f"{be:.0f} frames at {size} px ({be * size * size / 1e6:.0f} M pixel-frames; rollout.COMPILE_BREAK_EVEN = "
              f"{COMPILE_BREAK_EVEN / 1e6:.0f} M: {'holds within 2x' if be * size * size / 2 <= COMPILE_BREAK_EVEN <= 2 * be * size * size else 'UPDATE IT'})")
    print(json.dumps({'wall': {k: round(v, 3) for k, v in med.items()}, 'cpu': {k: round(v, 3) for k, v in cpu.items()}}))
    if not a.no_rss: rss_report(rss_steps, a.rss_size, threads)

def rss_report(rss_steps, size, threads):
    "Peak RSS of a short and a long streamed rollout, each in its own process."
    (m1, f1), (m2, f2) = rss_run(rss_steps[0], size, 'tiny', threads), rss_run(rss_steps[1], size, 'tiny', threads)
    print(f"peak RSS, tiny net at {size} px → mp4: {rss_steps[0]} steps {m1:.0f} MB, {rss_steps[1]} steps {m2:.0f} MB "
          f"(growth {m2 - m1:+.0f} MB; {f1:.0f} / {f2:.0f} frames/s)")

if __name__ == '__main__': main()
