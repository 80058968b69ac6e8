"""Make the landing page's hero animation: the source beside A alone and A+B, rolled out from one start frame.

    python tools/make_hero.py RUN --out nbs/images/hero.gif     # RUN holds frames/, A/ and B/ (nfp_demo's OUT/run)
    python tools/make_hero.py RUN --out x.gif --steps 96 --tile 256
    python tools/make_hero.py RUN --sheet nbs/images/how_it_works_steps.png   # also How it works' picture of single steps

The A+B schedule is the one chosen for the run, read from `RUN/loop.json` (key "schedule", e.g. 'AAAB', '[AB]'
or '[AB@0.5]'); without that file it is 'AAAB'. The three panels are labelled "source", "A alone" and
"A+B (<schedule>)", each `--tile` pixels square (frames are enlarged with Lanczos). The GIF shares one palette
across its frames and drops frames until it fits in `--max-kb`.
"""
from __future__ import annotations
import argparse, io, json, sys
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCHEDULE = 'AAAB'
FONT = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'


def loop_schedule(run:Path) -> str:
    "The A+B schedule chosen for `run` (`run/loop.json`'s \"schedule\"), or 'AAAB' when none is stored."
    f = Path(run)/'loop.json'
    if not f.exists(): return DEFAULT_SCHEDULE
    s = json.loads(f.read_text()).get('schedule')
    if not isinstance(s, str) or not s.strip(): raise SystemExit(f"make_hero: {f} has no \"schedule\" string")
    return s.strip()


def _font(size:int):
    from PIL import ImageFont
    try: return ImageFont.truetype(FONT, size)
    except OSError: return ImageFont.load_default(size=size)


def hero_frames(source:np.ndarray, rolls:list, labels:list, tile:int=256, label_h:int=34, gap:int=6) -> list:
    "RGB PIL frames: one panel per array in `[source, *rolls]` (each (T,H,W,3) uint8), `tile` px square, labelled on top."
    from PIL import Image, ImageDraw
    panels = [source, *rolls]
    n, T = len(panels), min(len(p) for p in panels)
    W, H = n * tile + (n - 1) * gap, label_h + tile
    font = _font(int(label_h * 0.55))
    base = Image.new('RGB', (W, H), (17, 17, 17))
    d = ImageDraw.Draw(base)
    for k, lab in enumerate(labels):
        x0 = k * (tile + gap)
        w = d.textlength(lab, font=font)
        d.text((x0 + (tile - w) / 2, label_h * 0.2), lab, fill=(235, 235, 235), font=font)
    out = []
    for t in range(T):
        im = base.copy()
        for k, p in enumerate(panels):
            im.paste(Image.fromarray(np.asarray(p[t])).resize((tile, tile), Image.LANCZOS), (k * (tile + gap), label_h))
        out.append(im)
    return out


def save_gif(frames:list, path:Path, ms:int=120, colors:int=64) -> int:
    "Write `frames` as a looping GIF with one shared palette (no dithering); returns its size in bytes."
    from PIL import Image
    picks = frames[::max(1, len(frames) // 6)][:6]                  # the palette comes from frames across the clip
    strip = Image.new('RGB', (picks[0].width, picks[0].height * len(picks)))
    for i, f in enumerate(picks): strip.paste(f, (0, i * f.height))
    pal = strip.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    q = [f.quantize(palette=pal, dither=Image.Dither.NONE) for f in frames]
    buf = io.BytesIO()
    q[0].save(buf, format='GIF', save_all=True, append_images=q[1:], duration=ms, loop=0, optimize=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_bytes(buf.getvalue()); tmp.replace(path)
    return len(buf.getvalue())


def save_steps_sheet(store, run:Path, path:Path, t:int, ns=(1, 5, 10), tile:int=192, colors:int=128):
    "How it works' picture: frame t, A applied 1, 5 and 10 times, B on each, and the real frames that far ahead (a small PNG)."
    from PIL import Image
    from nfp_nb.restorer import restorer_sheet
    im = restorer_sheet(store, run/'A', run/'B', t=t, ns=ns, width=tile * (len(ns) + 1)).convert('RGB')
    path.parent.mkdir(parents=True, exist_ok=True)
    im.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    return path.stat().st_size


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('run', type=Path, help='run folder with frames/, A/ and B/ (nfp_demo writes OUT/run)')
    p.add_argument('--out', type=Path, default=ROOT/'nbs'/'images'/'hero.gif', help='GIF to write')
    p.add_argument('--start', type=int, default=None, help="start frame (default: a third into the video, as nfp_demo)")
    p.add_argument('--steps', type=int, default=120, help='feedback steps to roll out')
    p.add_argument('--every', type=int, default=4, help='keep every n-th step as a GIF frame')
    p.add_argument('--tile', type=int, default=256, help='pixels per panel (at least 256 for the landing page)')
    p.add_argument('--ms', type=int, default=120, help='milliseconds per GIF frame')
    p.add_argument('--colors', type=int, default=64, help='palette size')
    p.add_argument('--max-kb', type=int, default=3000, help='drop frames until the GIF is at most this size')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--sheet', type=Path, default=None, help="also write the single-step picture of How it works (a PNG)")
    a = p.parse_args(argv)
    for d in ('frames', 'A', 'B'):
        if not (a.run/d).exists(): p.error(f"{a.run/d} is missing: RUN must hold frames/, A/ and B/ (nfp_demo --out OUT makes OUT/run)")
    from nfp_nb.data import FrameStore
    from nfp_nb.rollout import rollout
    store = FrameStore.load(a.run)
    schedule = loop_schedule(a.run)
    start = len(store) // 3 if a.start is None else a.start
    res = rollout(start, {'A': a.run/'A', 'B': a.run/'B'}, schedule=['A', schedule], steps=a.steps, store=store, seed=a.seed)
    rolls = list(res.frames)                                         # [A alone, A+B], each (steps+1, H, W, 3)
    n_src = len(store) - start                                       # the source plays on, then back (never a jump)
    idx = [start + (i % (2 * n_src - 2) if i % (2 * n_src - 2) < n_src else 2 * n_src - 2 - i % (2 * n_src - 2))
           for i in range(a.steps + 1)] if n_src > 1 else [start] * (a.steps + 1)
    source = np.asarray(store.frames[idx])
    labels = ['source', 'A alone', f'A+B ({schedule})']
    every = a.every
    while True:
        sel = slice(every, None, every)                              # from step `every`: a still of frame 0 would show three equal panels
        frames = hero_frames(source[sel], [r[sel] for r in rolls], labels, tile=a.tile)
        size = save_gif(frames, a.out, ms=a.ms * every // a.every, colors=a.colors)
        if size <= a.max_kb * 1000 or len(frames) <= 12: break
        every += 1
    if a.sheet:
        n = save_steps_sheet(store, a.run, a.sheet, start)
        print(f"wrote {a.sheet} ({n / 1e3:.0f} kB; frame {start}, A 1/5/10 times, B on each, the real frames ahead)")
    print(f"wrote {a.out} ({size / 1e3:.0f} kB, {len(frames)} frames of {frames[0].width}x{frames[0].height}, "
          f"every {every} of {a.steps} steps from frame {start}; A+B schedule {schedule})")
    return 0


if __name__ == '__main__': sys.exit(main())
