"nfp_demo end to end on a miniature budget: every output is written and readable, bad input exits 2."
import json, math
import numpy as np, pytest
from nfp_nb.demo import DemoPlan, run_demo
from nfp_nb.loops import best_with_b
from nfp_nb.cli import demo_main
from nfp_nb.checkpoint import load_checkpoint
from nfp_nb.core import jsonable
from nfp_nb.data import FrameStore
from nfp_nb.metrics import quality_bar
from nfp_nb.video import probe_video, read_video

pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.py

def test_demo_writes_every_output(tmp_path):
    plan = DemoPlan('tiny', size=32, frames=24, skip=2, steps_a=4, steps_b=4, n=(1, 3), rollout_steps=12, choose_steps=48, choose_starts=1)
    s = run_demo(tmp_path/'out', plan=plan, preset='tiny', quiet=True)
    out = tmp_path/'out'
    for name in ('rollout_A.mp4', 'rollout_AB.mp4', 'sheet_A.png', 'sheet_AB.png', 'drift.png', 'summary.json'):
        assert (out/name).stat().st_size > 0, name
    assert probe_video(out/'rollout_AB.mp4').n_frames == 13        # the start frame + 12 steps
    summary = json.loads((out/'summary.json').read_text())
    assert summary == jsonable(s)                                    # what was written is what was returned
    # both loops start from the source's frame `start` and leave it; the second is the loop the run chose, and it
    # differs from A alone exactly when that loop gives B steps
    store, a, ab = FrameStore.load(out/'run'), read_video(out/'rollout_A.mp4'), read_video(out/'rollout_AB.mp4')
    assert summary['start'] == len(store) // 3
    for v in (a, ab):
        assert np.argmin([np.abs(v[0].astype(int) - f).mean() for f in store.frames]) == summary['start']
        assert np.abs(v[-1].astype(int) - v[0]).mean() > 4
    # the second rollout always uses B: the run's choice, or the best loop with B when the run chose A alone
    chosen = summary['loop']['schedule']
    assert chosen == json.loads((out/'run'/'loop.json').read_text())['schedule']
    shown = chosen if 'B' in chosen else best_with_b(summary['loop']['table'])['schedule']
    assert 'B' in shown and summary['AB']['schedule'] == shown and summary['AB']['chosen'] == (shown == chosen)
    assert summary['A']['chosen'] == (chosen == 'A')
    same = lambda *ds: json.dumps(ds[0], sort_keys=True) == json.dumps(ds[1], sort_keys=True)
    assert not same(summary['AB']['drift_last_quarter'], summary['A']['drift_last_quarter'])
    # the bar (a)-(c) of the chosen loop and of the loop with B, and the one-step fidelity, with the source's spread
    mine = s['AB'] if shown == chosen else s['A']
    bar = quality_bar(mine['drift_last_quarter'], s['A']['drift_last_quarter'], s['source_spread'])
    assert summary['bar']['checks'] == bar['checks'] and {'a', 'b'} <= set(bar['checks']) and summary['bar']['spread'] > 0
    assert summary['bar_with_b']['texture_ratio'] == pytest.approx(s['AB']['drift_last_quarter']['texture'] / s['A']['drift_last_quarter']['texture'])
    assert summary['speed']['with_b_fps'] == s['AB']['fps'] and summary['speed']['chosen_fps'] == mine['fps']
    for net in ('A', 'B'):
        d = summary['one_step'][net]
        assert math.isfinite(d['texture']) and d['texture'] > 0 and d['spread_texture'] > 0, (net, d)
    # a second run reuses the trained networks: no checkpoint is written again, and it renders the same loops
    ckpts = lambda: {p: p.stat().st_mtime_ns for net in 'AB' for p in sorted((out/'run'/net).iterdir())}
    before = ckpts()
    assert [load_checkpoint(out/'run'/net).step for net in 'AB'] == [plan.steps_a, plan.steps_b]
    s2 = run_demo(out, plan=plan, preset='tiny', quiet=True)
    assert ckpts() == before
    nets_say = lambda d: json.dumps([d['one_step'], d['A']['drift_last_quarter'], d['AB']['drift_last_quarter']], sort_keys=True)
    assert nets_say(s2) == nets_say(s)

def test_demo_bad_input_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e: demo_main(['--preset', 'huge', '--out', str(tmp_path)])
    assert e.value.code == 2 and "'huge'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: demo_main(['--video', str(tmp_path/'missing.mp4'), '--out', str(tmp_path/'o'), '--preset', 'tiny'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'missing.mp4' in err and err.count('\n') == 1
