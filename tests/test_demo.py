"nfp_demo end to end on a miniature budget: every output is written and readable, bad input exits 2."
import json, subprocess, sys
from pathlib import Path
import pytest, torch
from nfp_nb.demo import DemoPlan, run_demo, demo_main
from nfp_nb.video import probe_video

torch.set_num_threads(1)

def test_demo_writes_every_output(tmp_path):
    plan = DemoPlan('tiny', size=32, frames=24, skip=2, steps_a=4, steps_b=4, n=(1, 3), m=(1, 3), rollout_steps=12)
    s = run_demo(tmp_path/'out', plan=plan, preset='tiny', quiet=True)
    out = tmp_path/'out'
    for name in ('rollout_A.mp4', 'rollout_AB.mp4', 'sheet_A.png', 'sheet_AB.png', 'drift.png', 'summary.json'):
        assert (out/name).stat().st_size > 0, name
    assert probe_video(out/'rollout_AB.mp4').n_frames == 13        # the start frame + 12 steps
    summary = json.loads((out/'summary.json').read_text())
    assert summary['AB']['schedule'] == plan.schedule and 0 <= summary['A']['drift_last_quarter']['texture'] <= 1.5
    # the bar (a)-(c) and the one-step fidelity are in the summary, with the source's spread they are judged against
    assert set(summary['bar']['checks']) == {'a', 'b', 'motion', 'sharpness'} and summary['bar']['spread'] > 0
    assert summary['one_step']['A']['texture'] >= 0 and 'spread_texture' in summary['one_step']['B']
    assert summary == json.loads(json.dumps(s, default=str))
    # a second run reuses the trained networks instead of training again
    s2 = run_demo(tmp_path/'out', plan=plan, preset='tiny', quiet=True)
    assert s2['seconds'] < s['seconds']

def test_demo_bad_input_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e: demo_main(['--preset', 'huge', '--out', str(tmp_path)])
    assert e.value.code == 2 and "'huge'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: demo_main(['--video', str(tmp_path/'missing.mp4'), '--out', str(tmp_path/'o'), '--preset', 'tiny'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'missing.mp4' in err and err.count('\n') == 1
