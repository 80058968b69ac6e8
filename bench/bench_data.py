"""Benchmark of the frame cache against the PNG-folder approach it replaces, and of its peak memory.

Makes a 720p, 10-second clip of the sample video (300 frames; `--quick`: 4 seconds) and measures, in one run:
  (a) baseline: decode with PyAV, dump every frame to PNG with PIL, then load the PNG folder (resized to the
      training size, as a data loader would);
  (b) `FrameStore.prepare` first build (decode with PyAV, resize, write the uint8 cache);
  (c) `FrameStore.load` and a full pass over `PairDataset` (every item: two frames as float tensors).
It prints frames/s for each and the ratios (b)/(a), (c)/(a) (targets: >= 2x and >= 20x).

Then memory: two 720p x264 clips of moving colour gradients made with PyAV, 150 and 600 frames, each prepared at
the training size by a fresh process (median of three processes each). For each it prints
  - VmHWM: the kernel's peak resident set of the process (anonymous and file-backed pages together; the cache is
    written with ordinary writes, so its pages are page cache, never in the process's resident set);
  - peak RssAnon: anonymous memory alone, sampled every 5 ms by a thread of the process (it can miss a spike
    shorter than that; VmHWM cannot);
  - RssAnon once `prepare` has returned, next to a process that only iterates the clip with `iter_video`.
The peak must stay flat: at most 1.1x for 4x the frames, on both measures.

    python bench/bench_data.py [--quick] [--size 256] [--rss-only]
"""
import argparse, os, sys, time, shutil, subprocess, tempfile
from pathlib import Path
import numpy as np, torch
import torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nfp_nb.video import VideoWriter, write_video
from nfp_nb.sample import iter_sample
from nfp_nb.data import FrameStore, PairDataset

_small = {}
def make_clip(path, n, h=720, w=1280):
    "A 720p clip of the sample video (rendered at 320x180 and upscaled, so that making it stays quick)."
    if n not in _small: _small[n] = np.concatenate(list(iter_sample(n, 320, seed=0, height=180)))
    with VideoWriter(path, fps=30, crf=20, preset='veryfast') as vw:
        for i in range(0, n, 16):
            t = torch.from_numpy(_small[n][i:i+16]).permute(0, 3, 1, 2).float()
            t = F.interpolate(t, size=(h, w), mode='bicubic', align_corners=False)
            vw.write(t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous())
    return path

def png_baseline(src, folder, size):
    "Decode with PyAV, save PNGs with PIL, then load them back resized: the approach FrameStore replaces."
    import av
    from PIL import Image
    folder.mkdir()
    with av.open(str(src)) as c:
        for i, fr in enumerate(c.decode(video=0)): fr.to_image().save(folder/f'{i:06d}.png')
    out = []
    for p in sorted(folder.iterdir()):
        with Image.open(p) as im:
            w, h = im.size; s = size / min(w, h)
            out.append(np.asarray(im.convert('RGB').resize((round(w * s), round(h * s)), Image.BILINEAR)))
    return len(out)

def gradient_clip(path, n, h=720, w=1280):
    "`n` frames of colour gradients that move every frame, as H.264 (x264 through PyAV): each frame costs a real decode."
    y, x = np.mgrid[:h, :w]
    base = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)   # (h, w, 3)
    step = np.array([4, 3, 251], np.int64)                   # per frame: +4, +3, -5 levels, wrapping around
    return write_video(path, (base + ((t * step) % 256).astype(np.uint8) for t in range(n)), fps=30, crf=20)

MEM_SCRIPT = """
import sys, threading, time
sys.path.insert(0, {root!r})
def status(key): return [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key + ':')][0] / 1024
peak = [0.0]
def watch():
    while True: peak[0] = max(peak[0], status('RssAnon')); time.sleep(0.005)
threading.Thread(target=watch, daemon=True).start()
from nfp_nb.data import FrameStore, _chunk_for
from nfp_nb.video import iter_video
if {what!r} == 'prepare': FrameStore.prepare({src!r}, run={run!r}, size={size}, progress=False)
else:
    for c in iter_video({src!r}, chunk=_chunk_for(720, 1280)): pass
time.sleep(0.05)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec, so a child would report its parent's peak
print(status('VmHWM'), max(peak[0], status('RssAnon')), status('RssAnon'))
"""

def memory(src, run, size, what='prepare'):
    "(VmHWM, peak RssAnon, RssAnon at the end) in MiB of a fresh process that prepares `src` (or only iterates it)."
    code = MEM_SCRIPT.format(root=str(Path(__file__).resolve().parents[1]), src=str(src), run=str(run), size=size, what=what)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    return [float(v) for v in r.stdout.split()[-3:]]

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='4-second clip instead of 10 seconds')
    ap.add_argument('--size', type=int, default=256, help='training size (short side)')
    ap.add_argument('--rss-only', action='store_true', help='only the peak-memory comparison')
    a = ap.parse_args()
    n = 120 if a.quick else 300
    tmp = Path(tempfile.mkdtemp(prefix='bench_data_'))
    try:
        if a.rss_only: return rss_growth(tmp, a.size)
        print(f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cpus; making a 1280x720 clip of {n} frames ...", flush=True)
        t0 = time.time(); src = make_clip(tmp/'clip.mp4', n); print(f"  clip made in {time.time() - t0:.1f} s ({src.stat().st_size / 2**20:.1f} MiB)")
        t0 = time.time(); k = png_baseline(src, tmp/'png', a.size); ta = time.time() - t0
        fa = k / ta; print(f"(a) PNG dump + load      {k} frames in {ta:7.2f} s  {fa:8.1f} frames/s")
        t0 = time.time(); st = FrameStore.prepare(src, run=tmp/'run', size=a.size, progress=False); tb = time.time() - t0
        fb = len(st) / tb; print(f"(b) FrameStore build     {len(st)} frames in {tb:7.2f} s  {fb:8.1f} frames/s   {st.size[0]}x{st.size[1]}")
        del st
        t0 = time.time()
        ds = PairDataset(FrameStore.load(tmp/'run'), skip=(1, 4))
        for i in range(len(ds)): item = ds[i]
        tc = time.time() - t0
        fc = 2 * len(ds) / tc; print(f"(c) reopen + PairDataset {len(ds)} pairs in {tc:7.2f} s  {fc:8.1f} frames/s (2 per pair)")
        print(f"ratios: (b)/(a) = {fb / fa:.1f}x (target >= 2x)   (c)/(a) = {fc / fa:.1f}x (target >= 20x)")
        rss_growth(tmp, a.size)
    finally: shutil.rmtree(tmp, ignore_errors=True)

def rss_growth(tmp, size, lengths=(150, 600), reps=3):
    "Peak memory of fresh processes preparing 720p gradient clips of `lengths` frames (medians of `reps`), and the growth."
    print(f"memory of a fresh process preparing a 1280x720 x264 clip of moving gradients at size {size} "
          f"(MiB, median of {reps} processes):", flush=True)
    print(f"  {'frames':>6} {'VmHWM':>7} {'peak RssAnon':>13} {'RssAnon after':>14} {'(iter_video alone)':>19}")
    rows = {}
    for n in lengths:
        src = gradient_clip(tmp/f'grad{n}.mp4', n)
        runs = np.array([memory(src, tmp/f'mem{n}_{i}', size) for i in range(reps)])
        only = np.array([memory(src, None, size, 'iter') for i in range(reps)])
        rows[n] = np.median(runs, 0)
        hwm, anon, after = rows[n]
        print(f"  {n:>6} {hwm:>7.0f} {anon:>13.0f} {after:>14.0f} {np.median(only, 0)[2]:>19.0f}", flush=True)
    a, b = rows[lengths[0]], rows[lengths[-1]]
    g_hwm, g_anon = b[0] / a[0], b[1] / a[1]
    ok = max(g_hwm, g_anon) <= 1.1
    print(f"  growth {lengths[0]} -> {lengths[-1]} frames: VmHWM {g_hwm:.2f}x, peak RssAnon {g_anon:.2f}x "
          f"(target <= 1.1x: {'holds' if ok else 'MISSED'})")

if __name__ == '__main__': main()
