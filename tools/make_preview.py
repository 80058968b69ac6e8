"""Make the landing page's animated preview, `nbs/images/preview.gif`: the sample video beside feedback
rollouts of A alone and of A+B, from `nfp_demo --preset tiny` (a few CPU minutes).

    python tools/make_preview.py                 # runs (or reuses) the tiny demo in runs/preview, writes the GIF
    python tools/make_preview.py --out x.gif     # somewhere else

The demo's networks and rollouts are whatever the package's current recipe makes, so rerun this after a
change to the recipe to keep the landing page honest.
"""
from __future__ import annotations
import argparse, sys
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tile(frames:np.ndarray, idx, size:int) -> list:
    "Frames `idx` of uint8 (T,H,W,3) `frames`, each resized to size×size with Lanczos."
    from PIL import Image
    return [Image.fromarray(np.asarray(frames[i])).resize((size, size), Image.LANCZOS) for i in idx]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--run', type=Path, default=ROOT / 'runs' / 'preview', help='demo output folder (reused if complete)')
    p.add_argument('--out', type=Path, default=ROOT / 'nbs' / 'images' / 'preview.gif')
    p.add_argument('--frames', type=int, default=20, help='GIF frames')
    p.add_argument('--tile', type=int, default=96, help='pixels per panel')
    p.add_argument('--ms', type=int, default=160, help='milliseconds per GIF frame')
    a = p.parse_args(argv)
    from PIL import Image
    from nfp_nb.demo import run_demo
    from nfp_nb.data import FrameStore
    from nfp_nb.video import read_video
    import json
    summ = a.run / 'summary.json'
    s = json.loads(summ.read_text()) if summ.exists() else run_demo(a.run, preset='tiny', quiet=True)
    src = FrameStore.load(a.run / 'run').frames
    ra, rab = read_video(a.run / 'rollout_A.mp4'), read_video(a.run / 'rollout_AB.mp4')
    n, start = min(len(ra), len(rab)), int(s['start'])
    step = max(1, (n - 1) // (a.frames - 1))
    roll_idx = [min(i * step, n - 1) for i in range(a.frames)]
    s_step = max(1, min(step, (len(src) - 1 - start) // (a.frames - 1)))     # the source may be shorter than the rollout
    src_idx = [min(start + i * s_step, len(src) - 1) for i in range(a.frames)]
    panels = zip(tile(src, src_idx, a.tile), tile(ra, roll_idx, a.tile), tile(rab, roll_idx, a.tile))
    frames = []
    for row in panels:
        im = Image.new('RGB', (3 * a.tile, a.tile))
        for k, t in enumerate(row): im.paste(t, (k * a.tile, 0))
        frames.append(im.quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(a.out.name + '.tmp')
    frames[0].save(tmp, format='GIF', save_all=True, append_images=frames[1:], duration=a.ms, loop=0, optimize=True)
    tmp.replace(a.out)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e3:.0f} kB, {len(frames)} frames); "
          f"A+B/A texture {s['texture_ratio_AB_over_A']:.2f}, motion A {s['A']['drift_last_quarter']['motion']:.2f} "
          f"A+B {s['AB']['drift_last_quarter']['motion']:.2f}")
    return 0


if __name__ == '__main__': sys.exit(main())
