"Loops that travel: the run chooses its loop (nfp_loop, loop.json), nfp_rollout uses it, B's targets ahead, and the metrics that see a loop holding still or jolting."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from nfp_nb.core import ConfigError
from nfp_nb.data import FrameStore
from nfp_nb.metrics import SourceStats, drift_metrics, summarize_drift, quality_bar
from nfp_nb.loops import choose_loop, run_loop, pick_loop, score_loops, LOOP_FILE
from nfp_nb.rollout import rollout

pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.py

def sh(*cmd, **kw):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=600, **kw)

def nfp(cmd): return str(Path(sys.executable).parent / cmd)

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A tiny trained run: the sample clip at 32 px, A and B a few steps each (B with targets ahead, the default)."
    run = tmp_path_factory.mktemp('loops') / 'run'
    FrameStore.prepare(None, run=run, size=32, max_frames=48, progress=False)
    for net, extra in (('A', []), ('B', ['--n-range', '1', '3', '--ahead', '0', '3'])):
        r = sh(nfp('nfp_train'), run, '--net', net, '--preset', 'tiny', '--steps', '4', '--quiet', '--sample-every', '1000',
               '--no-choose-loop', *extra)
        if r.returncode and 'no-choose-loop' in r.stderr:      # before the option existed
            r = sh(nfp('nfp_train'), run, '--net', net, '--preset', 'tiny', '--steps', '4', '--quiet', '--sample-every', '1000', *extra)
        assert r.returncode == 0, r.stderr
    return run

def test_b_trained_ahead_by_default(run):
    meta = json.loads(max((run / 'B').glob('*.json')).read_text())['meta']
    assert meta['ahead'] == [0, 3] and meta['m'] == [1, 6]

def test_m_and_ahead_are_alternatives(run):
    r = sh(nfp('nfp_train'), run, '--net', 'B', '--preset', 'tiny', '--steps', '1', '--m', '1', '3', '--ahead', '0', '2')
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and '--m and --ahead' in r.stderr

def test_nfp_loop_chooses_and_nfp_rollout_uses_it(run, tmp_path):
    r = sh(nfp('nfp_loop'), run, '--candidates', 'A,AAAB,[AB@0.5]', '--steps', '48', '--starts', '2')
    assert r.returncode == 0, r.stderr
    rec = json.loads((run / LOOP_FILE).read_text())
    assert rec['schedule'] in ('A', 'AAAB', '[AB@0.5]') and [t['schedule'] for t in rec['table']] == ['A', 'AAAB', '[AB@0.5]']
    assert '| `A` |' in r.stderr and 'chose' in r.stderr                     # the table it chose from is printed
    assert run_loop(run) == (rec['schedule'], None)
    m = tmp_path / 'm.json'
    r = sh(nfp('nfp_rollout'), '--run', run, '--steps', '6', '--out', tmp_path / 'r.mp4', '--metrics', m)
    assert r.returncode == 0, r.stderr
    assert json.loads(m.read_text())['schedule'] == rec['schedule'] and 'the loop this run chose' in r.stderr
    r = sh(nfp('nfp_rollout'), '--run', run, '--steps', '6', '--out', tmp_path / 'r2.mp4', '--metrics', m, '--schedule', '[AB@0.25]')
    assert r.returncode == 0 and json.loads(m.read_text())['schedule'] == '[AB@0.25]'    # a flag overrides it
    r = sh(nfp('nfp_rollout'), '--like', m, '--run', run, '--out', tmp_path / 'r3.mp4', '--metrics', tmp_path / 'm3.json')
    assert r.returncode == 0 and json.loads((tmp_path / 'm3.json').read_text())['schedule'] == '[AB@0.25]'

def test_nfp_loop_dry_run_and_bad_input(run, tmp_path):
    before = (run / LOOP_FILE).read_text() if (run / LOOP_FILE).exists() else None
    r = sh(nfp('nfp_loop'), run, '--candidates', 'A,AB', '--steps', '48', '--starts', '1', '--dry-run')
    assert r.returncode == 0 and ((run / LOOP_FILE).read_text() if (run / LOOP_FILE).exists() else None) == before
    for bad, msg in ((['--candidates', 'A,AC'], 'names C'), (['--steps', '10'], 'at least 48')):
        r = sh(nfp('nfp_loop'), run, *bad)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and msg in r.stderr, r.stderr
    r = sh(nfp('nfp_loop'), tmp_path / 'nowhere')
    assert r.returncode == 2 and 'A/latest' in r.stderr

def test_choice_is_never_worse_than_a_alone(run):
    "Whatever B does, the chosen loop's texture is at most 1.05x A alone's in the chooser's own table."
    rec = choose_loop(run, candidates=('A', 'AB', '[AB]'), steps=48, starts=2, write=False, quiet=True)
    rows = {r['schedule']: r for r in rec['table']}
    assert rows[rec['schedule']]['texture'] <= 1.05 * rows['A']['texture']

def frames_of(run): return FrameStore.load(run).frames

def test_metrics_see_a_loop_that_holds_still_and_jolts(run):
    "A loop that plays frames t..t+3 and jumps back changes per step like the source, but travels nowhere and jolts."
    src = np.asarray(frames_of(run))
    stats = SourceStats.from_source(src)
    real = summarize_drift(drift_metrics(src, stats), tail=1.0)
    shaky = summarize_drift(drift_metrics(src[np.tile(np.arange(10, 14), 12)], stats), tail=1.0)
    assert 0.6 < real['travel24'] < 1.6 and real['steadiness'] < 1.3
    assert shaky['travel4'] < 0.05 and shaky['travel24'] < 0.3 and shaky['steadiness'] > 1.5
    bar = quality_bar(shaky, dict(texture=shaky['texture'] * 2), dict(texture=shaky['texture'], replay=0.0))
    assert not bar['checks']['travel'] and not bar['checks']['steadiness']

def test_scene_cut_does_not_decide_the_source_pace():
    "One cut in a steady clip moves neither its median pace nor its jolt percentile much."
    yy, xx = np.mgrid[:32, :32]
    clip = np.stack([(127 + 100 * np.sin((xx + t) / 4)).astype(np.uint8) for t in range(80)])[..., None].repeat(3, -1)
    cut = clip.copy(); cut[40:] = 255 - cut[40:]
    a, b = SourceStats.from_source(clip), SourceStats.from_source(cut)
    assert abs(b.pace[1] / a.pace[1] - 1) < 0.1 and abs(b.jolt / a.jolt - 1) < 0.2
