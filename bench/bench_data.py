"""Benchmark of the frame cache against the PNG-folder approach it replaces.

Makes a 720p, 10-second clip (300 frames; `--quick`: 4 seconds) and measures, in one run:
  (a) baseline: decode with PyAV, dump every frame to PNG with PIL, then load the PNG folder (resized to the
      training size, as a data loader would);
  (b) `FrameStore.prepare` first build (decode with decord, resize, write the uint8 cache);
  (c) `FrameStore.load` and a full pass over `PairDataset` (every item: two frames as float tensors).
It prints frames/s for each and the ratios (b)/(a), (c)/(a) (targets: >= 2x and >= 20x), then the peak RSS of a
fresh process preparing the clip and a clip four times as long (median of three fresh processes each), which
must stay flat: at most 1.1x for 4x the frames.

    python bench/bench_data.py [--quick] [--size 256]
"""
import argparse, os, sys, time, shutil, subprocess, tempfile, resource
from pathlib import Path
import numpy as np, torch
import torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nfp_nb.video import VideoWriter, iter_video
from nfp_nb.sample import iter_sample
from nfp_nb.data import FrameStore, PairDataset

_small = {}
def make_clip(path, n, h=720, w=1280, repeat=1):
    "A 720p clip of the sample video (rendered at 320x180 and upscaled, so that making it stays quick)."
    if n not in _small: _small[n] = np.concatenate(list(iter_sample(n, 320, seed=0, height=180)))
    with VideoWriter(path, fps=30, crf=20, preset='veryfast') as vw:
        for _ in range(repeat):
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

RSS_SCRIPT = """
import sys, resource
sys.path.insert(0, {root!r})
from nfp_nb.data import FrameStore
FrameStore.prepare({src!r}, run={run!r}, size={size}, progress=False)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec, so a child would report its parent's peak
print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])
"""

def peak_rss(src, run, size):
    code = RSS_SCRIPT.format(root=str(Path(__file__).resolve().parents[1]), src=str(src), run=str(run), size=size)
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    return int(r.stdout.strip().splitlines()[-1]) / 1024   # MiB

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='4-second clip instead of 10 seconds')
    ap.add_argument('--size', type=int, default=256, help='training size (short side)')
    ap.add_argument('--rss-only', action='store_true', help='only the peak-memory comparison')
    a = ap.parse_args()
    n = 120 if a.quick else 300
    tmp = Path(tempfile.mkdtemp(prefix='bench_data_'))
    try:
        print(f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cpus; making a 1280x720 clip of {n} frames ...", flush=True)
        t0 = time.time(); src = make_clip(tmp/'clip.mp4', n); print(f"  clip made in {time.time() - t0:.1f} s ({src.stat().st_size / 2**20:.1f} MiB)")
        if a.rss_only: return rss_growth(src, tmp, n, a.size)
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
        rss_growth(src, tmp, n, a.size)
    finally: shutil.rmtree(tmp, ignore_errors=True)

def rss_growth(src, tmp, n, size):
    "Median peak memory of a fresh process preparing `src`, and a clip four times as long; their ratio."
    print("peak RSS of a fresh process preparing the clip:", flush=True)
    long = make_clip(tmp/'clip4x.mp4', n, repeat=4)
    med = lambda clip, name: float(np.median([peak_rss(clip, tmp/f'{name}{i}', size) for i in range(3)]))
    r1, r4 = med(src, 'rss1_'), med(long, 'rss4_')
    g = r4 / r1
    print(f"  {n} frames: {r1:.0f} MiB   {4 * n} frames: {r4:.0f} MiB   growth {g:.2f}x "
          f"(target <= 1.1x: {'holds' if g <= 1.1 else 'MISSED'})")

if __name__ == '__main__': main()
