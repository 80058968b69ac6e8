"""Loops that travel: which way of training and using the restorer B keeps the source's look without holding the
loop still or jolting it? A measured comparison on up to five sources.

    python bench/bench_loops.py --video carphone=PATH/carphone_pristine.mp4 --video bigbuckbunny=PATH/bigbuckbunny.mp4
    python bench/bench_loops.py --quick                  # smoke test: 64 px, a few steps
    python bench/bench_loops.py --variants today,ahead   # only some ways of training B
    python bench/bench_loops.py --long 3000              # also the 3000-step check (d) of the chosen setting

Per source it prepares the frames and trains A exactly as `bench_quality.py` does (the same recipe, budget and
cache: A alone gets the whole budget, A+B splits it two thirds A, one third B), then trains B in each of these
ways, with the same number of B steps:

- `today`: the package's recipe before targets ahead existed: n in 1..10 A steps, target t+m with m in 1..10
  drawn on its own (so a target can lie behind what the input already shows);
- `ahead`: target m = n + 0..10, never behind the input's content (`train_restorer(ahead=(0, 10))`);
- `loop`: `ahead` for half of B's steps, then the other half on inputs made by the chained loop B(A(x)) of that
  half-trained B (the loop's own frames), starting from its weights;
- `near`, `exact`: targets m = n + 0..2, or exactly the frame A's n steps should show (m = n): B restores the frame
  A's content claims to be, rather than any of the next ten, so it has less room to average them into a still;
- `keep`: `ahead`, plus a loss that keeps B's coarse picture (8 × 8 pixel means) the input's
  (`TrainConfig.lambda_keep`): B may restore detail but not move content, so the loop's motion stays A's.

For every B it runs the package's loop chooser (`nfp_nb.loops.score_loops` + `pick_loop`, its own start frames,
120 steps), then rolls out from the benchmark's 4 start frames for 300 steps: A alone, `AAAB` and the chosen
setting. Numbers are read over steps 200-300 (`summarize_drift(tail=1/3)`) and averaged over the starts; the
bar is `nfp_nb.metrics.quality_bar`. `--long N` rolls the chosen setting of the package's default B out for N
steps from one start and checks (d): the last 300 steps no worse than steps 200-300 by more than 1.25x on
texture, and no collapse events. Results: OUT/TAG/loops.json (+ a compact copy with `--store`), contact sheets
and drift plots per source.
"""
from __future__ import annotations
import argparse, json, os, shutil, sys, time, warnings
from dataclasses import asdict, replace
from pathlib import Path
import numpy as np
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_quality as bq

VARIANTS = {'today': dict(m=(1, 10)), 'ahead': dict(ahead=(0, 10)), 'loop': dict(ahead=(0, 10), on_loop=0.5),
            'near': dict(ahead=(0, 2)), 'exact': dict(ahead=(0, 0)), 'keep': dict(ahead=(0, 10), lambda_keep=10.0)}
SUMMARY_KEYS = ('texture', 'travel4', 'travel24', 'steadiness', 'sharpness', 'motion')

class LoopStep(torch.nn.Module):
    "One frame of the chained loop: B(A(x)), as a predictor whose outputs B trains on."
    def __init__(self, A, B):
        super().__init__(); self.A, self.B = A, B
    def forward(self, x): return self.B(self.A(x))

def train_b_variant(store, a_run:Path, A, r, name:str, device, log):
    "B trained the `name` way for r.steps_b steps against A (cached under A's run folder)."
    from nfp_nb.restorer import train_restorer
    from nfp_nb.checkpoint import load_generator
    if name == 'today': return bq.train_b(store, a_run, A, replace(r, n=(1, 10), m=(1, 10)), device, log)[0]
    spec = VARIANTS[name]
    key = bq._key(dict(variant=name, spec=spec, n=r.n, steps=r.steps_b, feat=r.b_lambda_feat, l1=r.b_lambda_l1, seed=r.seed,
                       tex=r.b_lambda_tex, up=r.b_upsample, init=r.b_init, texch=r.tex_channels))
    run = a_run / f"B{name}-{key}"
    if not (run / 'done.json').exists():
        if run.exists(): shutil.rmtree(run)
        p = bq._preset(r.b_residual, r.b_upsample, r.b_warp)
        import nfp_nb.restorer as rs
        orig = rs.get_preset; rs.get_preset = lambda n, **kw: p
        t0 = time.perf_counter()
        extra = {k: v for k, v in spec.items() if k not in ('ahead', 'on_loop')}      # TrainConfig fields of the variant
        common = dict(n=r.n, ahead=spec['ahead'], prerender=None, **extra, preset='small', store=store, device=device, lambda_feat=r.b_lambda_feat,
                      lambda_l1=r.b_lambda_l1, lambda_tex=r.b_lambda_tex, tex_channels=r.tex_channels, save_every=0, sample_every=0, seed=r.seed)
        try:
            s1 = int(round(r.steps_b * (1 - spec.get('on_loop', 0))))
            torch.manual_seed(r.seed)
            with bq._quiet():
                train_restorer(run, predictor=A, steps=s1, net='B1' if s1 < r.steps_b else 'B', init=r.b_init,
                               dataset_kwargs=dict(cache_dir=run / 'prerender1', progress=False), **common)
            if s1 < r.steps_b:
                B1 = load_generator(run / 'B1' / 'latest', device=device)
                with bq._quiet():
                    train_restorer(run, predictor=LoopStep(A, B1).eval(), steps=r.steps_b - s1, net='B', init=B1,
                                   dataset_kwargs=dict(cache_dir=run / 'prerender2', progress=False), **common)
        finally: rs.get_preset = orig
        for c in ('prerender1', 'prerender2'): shutil.rmtree(run / c, ignore_errors=True)
        (run / 'done.json').write_text(json.dumps({'seconds': time.perf_counter() - t0}))
        log(f"  trained B ({name}): {r.steps_b} steps in {time.perf_counter() - t0:.0f} s")
    return load_generator(run / 'B' / 'latest', device=device)

def rollout_summary(nets, store, sched, starts, steps, stats, seed, device, cache:Path, keep_frames=False):
    "Roll `sched` out from `starts`; per start the per-step metrics; their summary over the last third, averaged."
    from nfp_nb.rollout import rollout
    from nfp_nb.metrics import drift_metrics, summarize_drift
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        per = {k: z[k] for k in z.files if not k.startswith('_')}
        fr0, secs, events = z['_frames0'], float(z['_seconds']), int(z['_events'])
    else:
        t0 = time.perf_counter()
        ro = rollout(starts, nets, sched, steps, store=store, seed=seed, device=device)
        secs = time.perf_counter() - t0
        fr = np.asarray(ro.frames)
        ms = [drift_metrics(f, stats) for f in fr]
        per = {k: np.stack([m[k] for m in ms]) for k in ms[0] if k != 'nearest_idx'}
        fr0, events = fr[0], len(ro.events)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, _frames0=fr0, _seconds=secs, _events=events, **per)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        sums = [summarize_drift({k: v[i] for k, v in per.items()}, tail=1 / 3) for i in range(len(starts))]
        summ = {k: float(np.nanmean([s[k] for s in sums])) for k in SUMMARY_KEYS}
    summ.update(seconds_per_frame=secs / steps / len(starts), collapses=events)
    return summ, per, fr0

def long_check(nets, store, sched, steps, stats, seed, device, cache:Path) -> dict:
    "(d): one start, `steps` steps: texture of the last 300 steps vs steps 200-300, and the collapse events."
    from nfp_nb.rollout import RolloutRun
    from nfp_nb.metrics import DriftMeter
    if cache.exists(): return json.loads(cache.read_text())
    m = DriftMeter(stats)
    run = RolloutRun(len(store) // 3, nets, sched, steps, store=store, seed=seed, device=device, chunk=100)
    t0 = time.perf_counter()
    for c in run: m.update(c)
    res = m.result()
    tex = res['texture']
    win = [float(np.mean(tex[s:s + 100])) for s in range(0, len(tex) - 99, 100)]
    early, late = float(np.mean(tex[200:301])), float(np.mean(tex[-300:]))
    out = dict(schedule=sched, steps=steps, texture_200_300=early, texture_last_300=late, ratio=late / max(early, 1e-12),
               texture_per_100=win, travel24_last_300=float(np.nanmedian(res['travel24'][-300:])),
               events=[dict(step=e.step, kind=e.kind, period=e.period) for e in run.events],
               ok=bool(late <= 1.25 * early and not run.events), seconds=time.perf_counter() - t0)
    cache.parent.mkdir(parents=True, exist_ok=True); cache.write_text(json.dumps(out))
    return out

def sheet(store, rows:dict, path:Path, tile:int=128):
    "Contact sheet: real frames, then per setting the frames at steps 0, 50, 150, 300, then 6 consecutive steps (jolts show)."
    from nfp_nb.video import contact_sheet
    n = min(len(f) for f in rows.values()) - 1
    steps, strip = (0, n // 6, n // 2, n), tuple(range(n - 10, n - 4))
    real = [min(s, len(store) - 1) for s in steps] + [min(s, len(store) - 1) for s in (100, 101, 102, 103, 104, 105)]
    frames, labels = [store[i] for i in real], [f'source f{i}' for i in real]
    for label, fr in rows.items():
        frames += [fr[s] for s in steps + strip]
        labels += [f"{label} @{s}" for s in steps + strip]
    img = contact_sheet(np.stack(frames), ncols=len(steps) + len(strip), width=(len(steps) + len(strip)) * (tile + 2), labels=labels)
    img.save(path)

def drift_figure(name, per:dict, path:Path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from nfp_nb.metrics import plot_drift
    curves = {label: {k: v[0] for k, v in p.items()} for label, p in per.items()}    # start 0: the jolts are not averaged away
    fig = plot_drift(curves, keys=['texture', 'motion', 'travel24', 'jolt'], ncols=4, figsize=(14, 2.8),
                     title=f"{name}: one {len(next(iter(curves.values()))['texture']) - 1}-step rollout per setting (start 0)")
    fig.savefig(path, dpi=72); plt.close(fig)

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--video', action='append', default=[], metavar='NAME=PATH')
    p.add_argument('--sources', default=None)
    p.add_argument('--variants', default=','.join(VARIANTS))
    p.add_argument('--default-variant', default='ahead', help="the way of training B that the package ships (for --long)")
    p.add_argument('--out', type=Path, default=Path('runs/bench_quality'))
    p.add_argument('--tag', default='loops')
    p.add_argument('--budget', type=int, default=1800)
    p.add_argument('--upsample', default=None, help="A's and B's upsampling ('transpose' or 'resize'; default: the package's)")
    p.add_argument('--quick', action='store_true')
    p.add_argument('--choose-steps', type=int, default=300, help="steps of the chooser's rollouts (the package's default: 300)")
    p.add_argument('--a-of-ab', choices=('own', 'shared'), default='own',
                   help="A+B's A: 'own' (a run of its own, trained like a user's A) or 'shared' (A alone's checkpoint at that step)")
    p.add_argument('--long', type=int, default=0, help='also the long-run check (d) over this many steps')
    p.add_argument('--store', type=Path, default=None, help='also write a compact JSON and the sheets here (the docs)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=None, help="torch threads (1 when other jobs share the cores: OpenMP's spin-waiting makes oversubscribed runs many times slower)")
    p.add_argument('--reuse-chooser', nargs='*', type=Path, default=[], metavar='JSON',
                   help="take the chooser's measurements from these loops.json files (same candidates) and apply today's pick_loop")
    p.add_argument('--merge', nargs='+', type=Path, default=None, metavar='JSON',
                   help="merge the loops.json files of runs that split the sources (same recipe) into OUT/TAG/loops.json (and --store) and stop")
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    if a.merge:
        parts = [json.loads(f.read_text()) for f in a.merge]
        if len({json.dumps(d['recipe'], sort_keys=True) for d in parts}) != 1: print("bench_loops: --merge: the recipes differ", file=sys.stderr); return 2
        full = dict(parts[0], sources={k: v for d in parts for k, v in d['sources'].items()}, merged=[str(f) for f in a.merge],
                    date=max(d['date'] for d in parts))
        hw = full['hardware']
        if 'threads' not in hw: hw['threads'], hw['cores'] = hw['cores'], os.cpu_count()   # files that named the threads 'cores'
        hw.setdefault('isa', hw.get('capability')); hw.setdefault('bf16_native', hw.get('bf16'))
        for out in [a.out / a.tag] + ([a.store] if a.store else []):
            out.mkdir(parents=True, exist_ok=True)
            (out / ('loops.json' if out == a.out / a.tag else f'{a.tag}.json')).write_text(json.dumps(full, indent=1, default=str))
        return 0
    from nfp_nb.metrics import SourceStats, source_spread, quality_bar
    from nfp_nb.loops import score_loops, pick_loop, best_with_b, loop_starts, CANDIDATES
    for v in a.video:
        name, sep, path = v.partition('=')
        if not sep or not Path(path).is_file(): print(f"bench_loops: --video {v}: expected NAME=PATH of a video file", file=sys.stderr); return 2
        bq.SOURCES[name] = Path(path)
    names = [s for s in (a.sources or ','.join(bq.SOURCES)).split(',') if s]
    variants = [v for v in a.variants.split(',') if v]
    bad = [s for s in names if s not in bq.SOURCES] + [v for v in variants if v not in VARIANTS]
    if bad: print(f"bench_loops: unknown source or variant: {', '.join(bad)}", file=sys.stderr); return 2
    r = bq.Recipe(budget=a.budget, others=(), a_of_ab=a.a_of_ab)
    if a.quick: r = replace(r, size=64, frames=48, budget=24, rollout_steps=60)
    if a.upsample: r = replace(r, upsample=a.upsample, b_upsample=a.upsample)
    r = r.resolved(); r = replace(r, n=(1, 10))
    steps = 60 if a.quick else 300
    res_dir = a.out / a.tag; res_dir.mkdir(parents=True, exist_ok=True)
    log_f = open(res_dir / 'log.txt', 'a')
    def log(msg): print(msg, flush=True); log_f.write(msg + '\n'); log_f.flush()
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), 'unknown CPU')
    hw = dict(cpu=cpu, cores=os.cpu_count(), threads=torch.get_num_threads(), isa=torch.backends.cpu.get_cpu_capability(),
              bf16_native='avx512_bf16' in open('/proc/cpuinfo').read() or 'amx_bf16' in open('/proc/cpuinfo').read(),
              gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, torch=torch.__version__)
    log(f"bench_loops [{a.tag}] {time.strftime('%Y-%m-%d %H:%M:%S')}: {hw}")
    log(f"recipe: A alone {r.budget} A steps; A+B {r.steps_a} A + {r.steps_b} B steps; {r.size} px; upsample {r.upsample}")
    report, reuse = {}, {}
    for f in a.reuse_chooser: reuse.update(json.loads(f.read_text())['sources'])
    for name in names:
        t_src = time.perf_counter(); log(f"[{name}]")
        store = bq.prepare_source(name, a.out, r)
        A_alone, A, a_run = bq.train_a(store, r, a.device, log)
        stats, spread = SourceStats.from_source(store), source_spread(store)
        T = len(store); starts = [int(round(i * (T - 1) / 4)) for i in range(4)]
        rc = a_run / 'rollouts_loops'
        alone, per_alone, fr_alone = rollout_summary({'A': A_alone}, store, 'A', starts, steps, stats, r.seed, a.device, rc / 'alone.npz')
        rep = dict(spread=spread, starts=starts, settings={'A alone': alone}, variants={})
        pers, frames = {'A alone': per_alone}, {'A alone': fr_alone}
        for v in variants:
            B = train_b_variant(store, a_run, A, r, v, a.device, log)
            nets = {'A': A, 'B': B}
            t0 = time.perf_counter()
            old = reuse.get(name, {}).get('variants', {}).get(v, {}).get('chooser')
            if old and [r['schedule'] for r in old] == list(CANDIDATES):      # the chooser's measurements, re-read by today's rule
                rows = [{k: x for k, x in r.items() if k not in ('vs_alone', 'misses', 'note')} for r in old]
            else: rows = score_loops(nets, store, CANDIDATES, loop_starts(T), steps=48 if a.quick else a.choose_steps, stats=stats, device=a.device)
            best, why = pick_loop(rows)
            with_b = best_with_b(rows)['schedule']                           # the loop with B a user sees beside A alone
            log(f"  B {v}: chose {why} ({time.perf_counter() - t0:.0f} s)")
            out = {}
            for sched in dict.fromkeys(['AAAB', best['schedule'], with_b]):
                if sched == 'A': out['A'] = alone; continue
                tag = bq._key(dict(v=v, s=sched, st=starts, n=steps))
                summ, per, fr0 = rollout_summary(nets, store, sched, starts, steps, stats, r.seed, a.device, rc / f"{v}-{tag}.npz")
                out[sched] = summ
                if v in (a.default_variant, 'today') and (sched == with_b or v == 'today'):
                    label = f"{v}: {sched}" + (' (chosen)' if sched == best['schedule'] else '')
                    pers[label], frames[label] = per, fr0
            chosen = out[best['schedule']] if best['schedule'] != 'A' else alone
            bar = quality_bar(chosen, alone, spread)
            bar_b = quality_bar(out[with_b], alone, spread)
            rep['variants'][v] = dict(chosen=best['schedule'], reason=why, chooser=rows, settings=out, bar=bar, with_b=with_b, bar_with_b=bar_b)
            log(f"  B {v}: chosen {best['schedule']}: texture {bar['texture_ratio']:.2f}x A alone (removed {bar['excess_removed']:.0%}), "
                f"{bar['texture_vs_spread']:.2f}x spread, travel24 {bar['travel24']:.2f}, steadiness {bar['steadiness']:.2f}, "
                f"sharpness {bar['sharpness']:.2f}: {'holds' if bar['ok'] else 'misses ' + ', '.join(k for k, ok in bar['checks'].items() if not ok)}"
                + (f"; AAAB travel24 {out['AAAB']['travel24']:.2f}, steadiness {out['AAAB']['steadiness']:.2f}" if 'AAAB' in out else '')
                + (f"; best with B {with_b}: texture {bar_b['texture_ratio']:.2f}x A alone, travel24 {bar_b['travel24']:.2f}, "
                   f"steadiness {bar_b['steadiness']:.2f}" if with_b != best['schedule'] else ''))
            if a.long and v == a.default_variant:
                sched = best['schedule']
                use = {'A': A} if sched == 'A' else nets
                d = long_check(use, store, sched, a.long, stats, r.seed, a.device, rc / f"long-{v}-{bq._key(dict(s=sched, n=a.long))}.json")
                rep['variants'][v]['long'] = d
                log(f"  (d) {sched} over {a.long} steps: last 300 / steps 200-300 texture {d['ratio']:.2f} (<= 1.25), "
                    f"{len(d['events'])} collapse events: {'holds' if d['ok'] else 'misses'}")
        sheet(store, frames, res_dir / f"loops_{name}_sheet.png")
        drift_figure(name, pers, res_dir / f"loops_{name}_drift.png")
        rep['seconds'] = time.perf_counter() - t_src
        report[name] = rep
        full = dict(hardware=hw, date=time.strftime('%Y-%m-%d'), recipe=asdict(r), rollout_steps=steps, choose_steps=48 if a.quick else a.choose_steps, variants=variants,
                    default_variant=a.default_variant, candidates=list(CANDIDATES), sources=report)
        (res_dir / 'loops.json').write_text(json.dumps(full, indent=1, default=str))
        if a.store:
            a.store.mkdir(parents=True, exist_ok=True)
            (a.store / f'{a.tag}.json').write_text(json.dumps(full, indent=1, default=str))
    log(f"done; results in {res_dir / 'loops.json'}")
    return 0

if __name__ == '__main__': sys.exit(main())
