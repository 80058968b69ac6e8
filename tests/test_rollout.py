"Rollouts: schedules, blending, determinism, batches, collapse detection, post-processing, rendering, nfp_rollout."
import dataclasses, json, os, re, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch, torch.nn as nn
from PIL import Image
from nfp_nb.core import ScheduleError, CheckpointError, ConfigError, SourceError, to_float, to_uint8
from nfp_nb.models import build_generator, get_preset, GeneratorConfig, run_generator
from nfp_nb.rollout import parse_schedule, rollout, iter_rollout, blend_checkpoints, load_start, CollapseConfig
from nfp_nb.render import (crop_aspect, upscale, pingpong, seamless_loop, find_loop, render_video,
                            render_run, RenderConfig)
from nfp_nb.cli import rollout_main, rollout_parser
from nfp_nb.video import read_video

pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.py

def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    return build_generator(GeneratorConfig(**{**vars(get_preset('tiny').generator), **kw})).eval()

@pytest.fixture(scope='module')
def A(): return tiny(0)

@pytest.fixture(scope='module')
def src():
    yy, xx = np.mgrid[:32, :48]
    f = [(127 + 120 * np.sin((xx + 2 * t) / 3) * np.cos(yy / 5)) for t in range(12)]
    f = np.stack(f).astype(np.uint8)[..., None].repeat(3, -1); f[..., 1] //= 2
    return f

class Shift(nn.Module):
    "Rolls the frame a quarter of its width: a limit cycle of period 4."
    def forward(self, x): return torch.roll(x, x.shape[-1] // 4, -1)

def test_parse_schedule():
    s = parse_schedule('AAAB', {'A': 0, 'B': 0})
    assert [s(i) for i in range(8)] == list('AAABAAAB')
    assert parse_schedule('A', ['A'])(99) == 'A'
    assert [parse_schedule('pred, fix', ['pred', 'fix'])(i) for i in range(3)] == ['pred', 'fix', 'pred']
    assert parse_schedule(lambda i: 'B' if i > 2 else 'A', 'AB')(3) == 'B'
    with pytest.raises(ScheduleError, match=r"names C, X, not among the networks given: A, B"): parse_schedule('ACXC', 'AB')
    with pytest.raises(ScheduleError, match='names B'): parse_schedule('AB', {'A': 0})
    with pytest.raises(ScheduleError, match="returned 'Z' at step 0"): parse_schedule(lambda i: 'Z', 'A')(0)
    with pytest.raises(ScheduleError): parse_schedule('  ', 'A')

def test_blend_checkpoints(A):
    A2 = tiny(1)
    for alpha in (0.0, 0.25, 1.0):
        m = blend_checkpoints(A, A2, alpha).state_dict()
        for k, v in A.state_dict().items():
            torch.testing.assert_close(m[k], torch.lerp(v, A2.state_dict()[k], alpha))
    with pytest.raises(CheckpointError, match=r"tensor 'front.1.weight' has shape \(8, 3, 7, 7\) in the first network and \(16, 3, 7, 7\)"):
        blend_checkpoints(A, tiny(ngf=16), 0.5)
    with pytest.raises(CheckpointError, match="exists only in the"):
        blend_checkpoints(A, tiny(n_blocks=3), 0.5)
    out = rollout(np.zeros((32, 32, 3), np.uint8), blend_checkpoints(A, A2, 0.5), steps=2)   # usable as a network
    assert out.shape == (3, 32, 32, 3)

def test_rollout_shapes_determinism(A, src):
    r = rollout(0, {'A': A}, steps=6, store=src)
    assert r.shape == (7, 32, 48, 3) and r.frames.dtype == np.uint8 and (r[0] == src[0]).all()
    assert np.asarray(r).shape == r.shape and r.names == ['A'] * 6 and r.fps > 0
    a = rollout('noise', A, steps=4, noise=0.2, seed=5, size=32)
    b = rollout('noise', A, steps=4, noise=0.2, seed=5, size=32)
    c = rollout('noise', A, steps=4, noise=0.2, seed=6, size=32)
    assert (a.frames == b.frames).all() and not (a.frames[-1] == c.frames[-1]).all()
    assert rollout(0, A, steps=2, store=src, dtype='auto').frames.dtype == np.uint8
    with pytest.raises(ConfigError, match='steps must be positive'): rollout(0, A, steps=0, store=src)
    with pytest.raises(ScheduleError, match='names B'): rollout(0, A, 'AB', steps=3, store=src)

def test_batch_and_stream(A, src):
    rb = rollout([0, 5, 9], A, steps=5, store=src)
    assert rb.shape == (3, 6, 32, 48, 3)
    for b, s in enumerate([0, 5, 9]):    # same frames as separate rollouts, up to float noise of batched kernels
        assert np.abs(rb.frames[b].astype(int) - rollout(s, A, steps=5, store=src).frames).max() <= 2
    chunks = list(iter_rollout(0, A, steps=10, store=src, chunk=4))
    assert [len(c) for c in chunks] == [4, 4, 3]
    assert (np.concatenate(chunks) == rollout(0, A, steps=10, store=src).frames).all()
    bchunks = list(iter_rollout(0, A, steps=3, store=src, batch=2, chunk=8))
    assert bchunks[0].shape == (2, 4, 32, 48, 3)
    seen = []
    rollout(0, A, steps=3, store=src, callback=lambda i, f: seen.append((i, f.shape)))
    assert seen == [(i, (32, 48, 3)) for i in (1, 2, 3)]

def test_schedule_blend_noise(src):
    B = nn.Identity()
    half = rollout(0, {'A': Shift(), 'B': B}, 'AB', steps=2, store=src, blend={'A': 0.5})
    x0, x1 = to_float(src[0]), torch.roll(to_float(src[0]), 12, -1)
    exp = ((x0 + x1) / 2 + 1).mul(127.5).round().clamp(0, 255)
    assert np.abs(half[1].astype(float) - exp.permute(1, 2, 0).numpy()).max() <= 1
    assert (half[2] == half[1]).all()                       # B is the identity
    assert half.names == ['A', 'B']

def test_start_kinds(A, src, tmp_path):
    Image.fromarray(src[3]).save(tmp_path / 's.png')
    assert (load_start(tmp_path / 's.png')[0].numpy() == src[3]).all()
    assert load_start(str(tmp_path / 's.png'), size=16).shape == (1, 16, 24, 3)
    assert load_start('noise', size=(16, 32), batch=2).shape == (2, 16, 32, 3)
    assert (load_start(torch.from_numpy(src[:2])).numpy() == src[:2]).all()
    assert (load_start(to_float(src[1])).numpy()[0] == src[1]).all()
    with pytest.raises(SourceError, match='not found'): load_start(tmp_path / 'nope.png')
    with pytest.raises(ConfigError, match='no store'): load_start(3)
    with pytest.raises(ConfigError, match='out of range'): load_start(99, store=src)
    with pytest.raises(ConfigError, match='start array'): load_start(np.zeros((4, 4), np.uint8))

def test_skip_conditioned_generator(src):
    G = tiny(skip_cond=True, max_skip=3)
    assert rollout(0, G, steps=2, store=src, skip=2).shape == (3, 32, 48, 3)

def test_collapse_detection_and_reactions(src):
    cc = CollapseConfig(freeze_steps=4, cycle_steps=5)
    fr = rollout(0, nn.Identity(), steps=9, store=src, collapse=cc)
    assert [(e.kind, e.step, e.action) for e in fr.events] == [('frozen', 4, None), ('frozen', 8, None)]
    assert rollout(0, nn.Identity(), steps=9, store=src, collapse=False).events == []          # detection off
    cy = rollout(0, Shift(), steps=12, store=src, collapse=cc)
    assert cy.events and cy.events[0].kind == 'cycle' and cy.events[0].period == 4
    kick = rollout(0, nn.Identity(), steps=6, store=src, collapse=cc, on_collapse='noise')
    assert kick.events[0].action == 'noise' and np.abs(kick[5].astype(int) - kick[4]).mean() > 10
    sw = rollout(0, {'A': nn.Identity(), 'B': Shift()}, steps=7, store=src, collapse=cc, on_collapse='B')
    assert sw.events[0].action == 'B' and sw.names[4] == ['B'] and sw.names[3] == 'A'
    rb = rollout([0, 0], nn.Identity(), steps=4, store=src, collapse=cc)
    assert sorted(e.sample for e in rb.events) == [0, 1]
    with pytest.raises(ScheduleError, match='on_collapse'): rollout(0, nn.Identity(), steps=2, store=src, on_collapse='C')

def test_post_processing():
    f = np.random.default_rng(0).integers(0, 256, (3, 36, 80, 3), dtype=np.uint8)
    assert crop_aspect(f, '16:9').shape == (3, 36, 64, 3)
    assert crop_aspect(f, '1:1').shape == (3, 36, 36, 3)
    assert crop_aspect(f[0], 4 / 3).shape == (36, 48, 3)
    assert crop_aspect(np.zeros((100, 100, 3), np.uint8), '16/9').shape == (56, 100, 3)
    with pytest.raises(ConfigError, match='width:height'): crop_aspect(f, 'wide')
    for m in ('lanczos', 'bicubic'): assert upscale(f, 2, m).shape == (3, 72, 160, 3)
    assert upscale(f[0], 4).shape == (144, 320, 3)
    assert upscale(f, 2, nn.Upsample(scale_factor=2)).shape == (3, 72, 160, 3)
    assert upscale(f, 0.5, 'bicubic').shape == (3, 18, 40, 3)
    with pytest.raises(ConfigError, match='upscale method'): upscale(f, 2, 'magic')
    flat = np.full((2, 8, 8, 3), 100, np.uint8)
    assert (upscale(flat, 2, 'bicubic') == 100).all() and (upscale(flat, 2) == 100).all()
    assert [int(x) for x in pingpong(np.arange(5)[:, None, None, None].repeat(3, -1))[:, 0, 0, 0]] == [0, 1, 2, 3, 4, 3, 2, 1]

def test_seamless_loop():
    xx = np.arange(40)[None].repeat(24, 0)
    per = np.stack([127 + 100 * np.sin(2 * np.pi * (xx + 2 * t) / 40) for t in range(70)])   # period 20 frames
    per = (per + np.linspace(0, 30, 70)[:, None, None]).clip(0, 255).astype(np.uint8)[..., None].repeat(3, -1)
    i, j, d = find_loop(per, min_len=12, fade=4)
    assert (j - i) % 20 == 0 and j + 4 <= 70
    lp = seamless_loop(per, min_len=12, fade=4)
    assert len(lp) == j - i
    step = lambda a, b: np.abs(a.astype(int) - b).mean()
    inner = np.median([step(lp[k], lp[k + 1]) for k in range(len(lp) - 1)])
    assert step(lp[-1], lp[0]) <= 1.5 * inner               # the seam is no bigger than an ordinary step
    naive = per[i:j]
    assert step(naive[-1], naive[0]) > step(lp[-1], lp[0])  # and smaller than cutting without the fade
    with pytest.raises(ConfigError, match='needs more than'): seamless_loop(per[:10], min_len=12)

def test_render_video(A, src, tmp_path):
    res = render_video(tmp_path / 'a.mp4', 0, {'A': A, 'B': nn.Identity()}, 'AAB', steps=9, store=src, chunk=4,
                       post=lambda c: upscale(c, 2, 'bicubic'), frames_dir=tmp_path / 'png', keep=True)
    v = read_video(tmp_path / 'a.mp4')
    assert v.shape == (10, 64, 96, 3) and len(list((tmp_path / 'png').glob('*.png'))) == 10
    assert res['frames'][0].shape == (10, 64, 96, 3) and res['names'][:3] == ['A', 'A', 'B']
    assert np.abs(v.astype(int) - res['frames'][0]).mean() < 12                # H.264 yuv420 (chroma halved)
    r2 = render_video(tmp_path / 'b.mp4', [0, 4], A, steps=2, store=src)
    assert [p.name for p in r2['paths']] == ['b-0.mp4', 'b-1.mp4'] and all(p.exists() for p in r2['paths'])
    def boom(c): raise RuntimeError('encoder broke')
    with pytest.raises(RuntimeError, match='encoder broke'):
        render_video(tmp_path / 'c.mp4', 0, A, steps=40, store=src, chunk=2, post=boom)
    assert not (tmp_path / 'c.mp4').exists() and not list(tmp_path.glob('.c.mp4*'))  # no partial file

# ---- the console script ----
@pytest.fixture(scope='module')
def run(tmp_path_factory):
    from nfp_nb.data import FrameStore
    from nfp_nb.checkpoint import save_checkpoint
    run = tmp_path_factory.mktemp('run')
    FrameStore.prepare(None, run=run, size=32, max_frames=16, progress=False)
    save_checkpoint(run / 'A' / 'ep0001', tiny(0), meta={'epoch': 1, 'run': str(run)})
    save_checkpoint(run / 'B' / 'ep0001', tiny(1), meta={'epoch': 1, 'run': str(run)})
    return run

def _cli(argv, capsys):
    try: rollout_main([str(a) for a in argv]); code = 0
    except SystemExit as e: code = e.code
    return code, capsys.readouterr()

def test_cli_subprocess(run, tmp_path):
    out = tmp_path / 'r.mp4'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path(__file__).resolve().parents[1]) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    r = subprocess.run([sys.executable, '-m', 'nfp_nb.cli', 'rollout', '--run', str(run), '--steps', '8', '--crop', '16:9', '--upscale', '2',
                        '--out', str(out), '--metrics', str(tmp_path / 'm.json')], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert read_video(out).shape == (9, 36, 64, 3)
    m = json.loads((tmp_path / 'm.json').read_text())
    assert m['schedule'] == 'AAAB' and len(m['per_step'][0]['texture']) == 9 and m['per_step'][0]['motion'][0] is None

@pytest.mark.parametrize('extra,msg', [
    (['--steps', '0'], 'steps must be positive'),
    (['--steps', '3', '--schedule', 'AXB'], 'names X, not among the networks given: A, B'),
    (['--steps', '3', '--schedule', 'AB', '--on-collapse', 'C'], '--on-collapse C'),
    (['--steps', '3', '--schedule', 'AB', '--B', '{run}/nope'], 'not a checkpoint'),
    (['--steps', '3', '--out', '{tmp}/missing/x.mp4'], 'does not exist'),
    (['--steps', '3', '--crop', '16:0'], 'width:height'),
    (['--steps', '3', '--start', '99'], '--start 99'),
    (['--steps', '3', '--batch', '0'], '--batch must be positive, got 0'),          # RenderConfig's checks, spelled as flags
    (['--steps', '3', '--crf', '60'], '--crf must be between 0 and 51'),
    (['--steps', '3', '--mix', '9', '--A2', '{run}/A'], '--mix 9.0: expected a weight between -1 and 2'),
    (['--steps', '3', '--pan', '1', 'x'], "--pan: invalid float value: 'x'"),
    (['--steps', '3', '--dtype', 'fp8'], "--dtype: invalid choice: 'fp8'"),
    (['--schedule', 'A'], 'required: --steps'),
    (['--like', '{run}/nope.json'], 'nope.json'),
])
def test_cli_bad_input(run, tmp_path, capsys, extra, msg):
    argv = ['--run', run, '--out', tmp_path / 'x.mp4'] + [e.format(run=run, tmp=tmp_path) for e in extra]
    if '--out' in extra: argv = argv[:2] + [e.format(run=run, tmp=tmp_path) for e in extra]
    code, cap = _cli(argv, capsys)
    assert code == 2 and msg in cap.err and cap.err.count('\n') == 1, cap.err

def test_cli_resize_note_loop_batch(run, tmp_path, capsys):
    code, cap = _cli(['--run', run, '--steps', '3', '--size', '24', '--out', tmp_path / 'x.mp4'], capsys)
    assert code == 0 and 'resized to 24×24' in cap.err and read_video(tmp_path / 'x.mp4').shape == (4, 24, 24, 3)
    code, cap = _cli(['--run', run, '--steps', '24', '--loop', '--batch', '2', '--noise', '--schedule', 'A',
                      '--frames-dir', tmp_path / 'png', '--out', tmp_path / 'l.mp4'], capsys)
    assert code == 0 and cap.out.count('loop of frames') == 2
    assert (tmp_path / 'l-0.mp4').exists() and (tmp_path / 'l-1.mp4').exists()
    assert len(list((tmp_path / 'png').glob('1_*.png'))) == 25

def test_per_sample_schedules(A, src):
    A2 = tiny(1)
    two = rollout(0, {'A': A, 'A2': A2, 'B': nn.Identity()}, ['A', 'A2,B'], steps=4, store=src)
    assert two.shape == (2, 5, 32, 48, 3) and two.names[0] == ['A', 'A2'] and two.names[1] == ['A', 'B']
    assert np.abs(two.frames[0].astype(int) - rollout(0, A, steps=4, store=src).frames).max() <= 2
    assert (two.frames[1][2] == two.frames[1][1]).all()                        # the B (identity) step
    with pytest.raises(ConfigError, match='2 schedules for a batch of 3'):
        rollout([0, 1, 2], {'A': A}, ['A', 'A'], steps=2, store=src)

def test_interrupt_keeps_rendered_video(A, src, tmp_path):
    def stop(i, f):
        if i == 9: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        render_video(tmp_path / 'k.mp4', 0, A, steps=50, store=src, chunk=4, callback=stop)
    assert read_video(tmp_path / 'k.mp4').shape[0] == 8                       # the two whole chunks before step 9

def test_cli_chain_schedule_and_ema(run, tmp_path, capsys):
    "`--schedule [AB]`: every written frame is B(A(x)); `--ema` on checkpoints saved without EMA weights: one line, exit 2."
    code, cap = _cli(['--run', run, '--steps', '4', '--schedule', '[AB]', '--metrics', tmp_path / 'm.json', '--out', tmp_path / 'c.mp4'], capsys)
    assert code == 0 and read_video(tmp_path / 'c.mp4').shape[0] == 5          # one frame per chained step
    assert json.loads((tmp_path / 'm.json').read_text())['schedule'] == '[AB]'
    code, cap = _cli(['--run', run, '--steps', '2', '--ema', '--out', tmp_path / 'e.mp4'], capsys)
    assert code == 2 and 'no EMA weights' in cap.err and cap.err.count('\n') == 1, cap.err

def test_cli_wide_size_mix_dtype_and_render_record(run, tmp_path, capsys):
    "--size HxW cuts square starts to the render's aspect; --A2/--mix blends; the metrics JSON holds what re-renders the video."
    from nfp_nb.checkpoint import save_checkpoint, checkpoint_fingerprint
    save_checkpoint(tmp_path / 'A2' / 'ep0001', tiny(5), meta={'epoch': 1})
    argv = ['--run', run, '--steps', '4', '--schedule', 'A', '--dtype', 'fp32', '--seed', '3']
    code, cap = _cli(argv + ['--size', '18x32', '--A2', tmp_path / 'A2', '--mix', '0.5',
                             '--out', tmp_path / 'w.mp4', '--metrics', tmp_path / 'm.json'], capsys)
    assert code == 0 and 'cut to the aspect of 32×18' in cap.err, cap.err
    assert read_video(tmp_path / 'w.mp4').shape == (5, 18, 32, 3)
    m = json.loads((tmp_path / 'm.json').read_text())
    assert m['fingerprints'] == {'A': checkpoint_fingerprint(run / 'A'), 'A2': checkpoint_fingerprint(tmp_path / 'A2'),
                                'B': checkpoint_fingerprint(run / 'B')}
    r = m['render']
    assert (r['seed'], r['dtype'], r['size'], r['mix'], r['start'], r['device']) == (3, 'float32', [18, 32], 0.5, 0, 'cpu')
    # --mix 0 is A itself; the wide start is the centre band of frame 0, not a stretched square
    code, _ = _cli(argv + ['--size', '18x32', '--A2', tmp_path / 'A2', '--mix', '0', '--frames-dir', tmp_path / 'p0', '--out', tmp_path / 'a.mp4'], capsys)
    code, _ = _cli(argv + ['--size', '18x32', '--frames-dir', tmp_path / 'p1', '--out', tmp_path / 'b.mp4'], capsys)
    from PIL import Image
    f0, f1 = (np.asarray(Image.open(sorted((tmp_path / d).glob('*.png'))[-1])) for d in ('p0', 'p1'))
    assert np.abs(f0.astype(int) - f1).max() <= 1
    for extra, msg in ((['--mix', '0.5'], '--A2 and --mix go together'), (['--size', '3x'], '--size')):
        code, cap = _cli(argv + extra + ['--out', tmp_path / 'x.mp4'], capsys)
        assert code == 2 and msg in cap.err and cap.err.count('\n') == 1, cap.err

def test_motion_inside_the_loop(A, src, run, tmp_path, capsys):
    "LoopMotion: the engine moves each frame after the networks; keyframes interpolate; the CLI flags reach it."
    from nfp_nb.rollout import LoopMotion, motion_at, apply_motion
    plain = rollout(0, A, steps=3, store=src, dtype='fp32')
    moved = rollout(0, A, steps=3, store=src, dtype='fp32', motion={'pan': (2, 0)})
    x = torch.from_numpy(plain[0]).permute(2, 0, 1)[None].float().div(127.5).sub(1)
    want = to_uint8(apply_motion(run_generator(A, x, 1), LoopMotion(pan=(2, 0))))[0].numpy()
    assert np.abs(moved[1].astype(int) - want).max() <= 1 and (moved[0] == plain[0]).all()
    with pytest.raises(ConfigError, match='zoom=-1'): rollout(0, A, steps=2, store=src, motion={'zoom': -1})
    (tmp_path / 'k.json').write_text(json.dumps([[0, {'zoom': 1.0}], [10, {'zoom': 1.05, 'rotate': 3}]]))
    code, cap = _cli(['--run', run, '--steps', '6', '--keyframes', tmp_path / 'k.json', '--out', tmp_path / 'k.mp4',
                      '--metrics', tmp_path / 'km.json'], capsys)
    assert code == 0 and json.loads((tmp_path / 'km.json').read_text())['render']['motion'][1][1]['zoom'] == 1.05
    code, cap = _cli(['--run', run, '--steps', '4', '--zoom', '1.03', '--rotate', '2', '--center', 'bright', '--out', tmp_path / 'z.mp4'], capsys)
    assert code == 0 and read_video(tmp_path / 'z.mp4').shape[0] == 5
    for extra, msg in ((['--center', '1'], "expected CX CY or 'bright'"), (['--zoom', '1.1', '--keyframes', tmp_path / 'k.json'], 'drop --zoom'),
                       (['--keyframes', tmp_path / 'nope.json'], 'nope.json')):
        code, cap = _cli(['--run', run, '--steps', '3', *extra, '--out', tmp_path / 'x.mp4'], capsys)
        assert code == 2 and msg in cap.err and cap.err.count('\n') == 1, cap.err

def test_cli_damaged_frame_store_is_an_error(run, tmp_path, capsys):
    "A truncated frames.npy is one line naming it and exit 2, not a silent rollout from noise."
    import shutil
    bad = tmp_path/'bad'; shutil.copytree(run, bad)
    f = bad/'frames'/'frames.npy'; f.write_bytes(f.read_bytes()[:1000])
    code, cap = _cli(['--run', bad, '--steps', '3', '--out', tmp_path/'x.mp4'], capsys)
    assert code == 2 and 'frames.npy' in cap.err and cap.err.count('\n') == 1 and not (tmp_path/'x.mp4').exists(), cap.err

# ---- RenderConfig: one definition of the render settings for render_run and nfp_rollout ----
def test_rollout_flags_are_the_render_config():
    "Every RenderConfig field is a generated nfp_rollout flag with its comment as help; the hand-written flags are inputs and outputs only."
    from nfp_nb.core import dataclass_overrides
    p = rollout_parser()
    names = [f.name for f in dataclasses.fields(RenderConfig)]
    assert sorted(p.config_flags.values()) == sorted(names), "a RenderConfig field without a flag (or a flag without a field)"
    acts = {a.dest: a for a in p._actions}
    for dest, name in p.config_flags.items():
        assert '--' + name.replace('_', '-') in acts[dest].option_strings
        assert acts[dest].help.split(' (default')[0] not in (name, ''), f"--{name}: no help (give the field a comment)"
    hand = {o for a in p._actions if a.dest not in p.config_flags for o in a.option_strings}
    assert hand == {'-h', '--help', '--run', '--A', '--A2', '--B', '--start', '--image', '--noise', '--out', '--frames-dir',
                    '--metrics', '--device', '--like'}
    motion = [g for g in p._action_groups if g.title.startswith('motion inside the loop')][0]
    assert {p.config_flags[a.dest] for a in motion._group_actions} == {'zoom', 'rotate', 'pan', 'center', 'keyframes'}
    cfg = lambda argv: RenderConfig(**dataclass_overrides(p.parse_args(argv + ['--out', 'x.mp4']), p.config_flags))
    assert cfg(['--steps', '7']) == RenderConfig(steps=7)                         # no flag given: the dataclass defaults
    # a value other than the default for every field (keyframes excludes the flat motion: below) reaches its field
    got = cfg(['--steps', '9', '--schedule', 'AB', '--seed', '4', '--inject', '0.1', '--blend', '0.5', '--batch', '2', '--size', '18x32',
               '--crop', '16:9', '--upscale', '2', '--loop', '--min-loop', '5', '--fps', '12', '--crf', '23', '--x264-preset', 'slow', '--on-collapse', 'noise',
               '--ema', '--dtype', 'bf16', '--no-compile', '--mix', '0.3', '--zoom', '1.1', '--rotate', '3', '--pan', '1', '-2',
               '--center', '0.5', '0'])
    base = RenderConfig(steps=1)
    assert {n for n in names if getattr(got, n) != getattr(base, n)} == set(names) - {'keyframes'}
    assert (got.size, got.pan, got.center, got.compile) == ((18, 32), (1.0, -2.0), (0.5, 0.0), False)
    assert cfg(['--steps', '2', '--keyframes', 'k.json']).keyframes == 'k.json'

@pytest.mark.parametrize('kw,err,msg', [
    (dict(steps=0), ConfigError, 'RenderConfig: steps must be positive, got 0'),
    (dict(steps='5'), ConfigError, 'steps must be an integer'),
    (dict(steps=3, batch=0), ConfigError, 'batch must be positive'),
    (dict(steps=3, inject=-0.1), ConfigError, 'inject must be at least 0'),
    (dict(steps=3, crop='16:0'), ConfigError, "crop '16:0': expected width:height"),
    (dict(steps=3, size='3x'), ConfigError, "size '3x'"),
    (dict(steps=3, size=(0, 4)), ConfigError, "size (0, 4)"),
    (dict(steps=3, mix=2.5), ConfigError, 'mix 2.5: expected a weight between -1 and 2'),
    (dict(steps=3, dtype='fp8'), ConfigError, "dtype 'fp8': expected one of auto, fp32, bf16, fp16"),
    (dict(steps=3, on_collapse='C'), ScheduleError, "on_collapse 'C'"),
    (dict(steps=3, schedule=''), ScheduleError, 'schedule'),
    (dict(steps=3, center=(1,)), ConfigError, "expected CX CY or 'bright'"),
    (dict(steps=3, pan=(1, 2, 3)), ConfigError, 'expected two numbers DX DY'),
    (dict(steps=3, zoom=1.1, keyframes=[[0, {'zoom': 1.0}]]), ConfigError, 'drop zoom/rotate/pan/center'),
    (dict(steps=3, keyframes=[[0, {'spin': 1}]]), ConfigError, 'unknown field(s) spin'),
    (dict(steps=3, fps=0), ConfigError, 'fps must be positive'),
    (dict(steps=3, crf=52), ConfigError, 'crf must be between 0 and 51'),
    (dict(steps=3, loop='yes'), ConfigError, 'loop must be True or False'),
])
def test_render_config_rejects_bad_values(kw, err, msg):
    with pytest.raises(err) as e: RenderConfig(**kw)
    assert msg in str(e.value) and '\n' not in str(e.value)

def test_render_config_normalises_values():
    c = RenderConfig(steps=3, size='18x32', pan=[1, 2], center=['bright'])
    assert (c.size, c.pan, c.center) == ((18, 32), (1.0, 2.0), 'bright')
    k = RenderConfig(steps=3, keyframes=[[0, {'zoom': 1.0}], [9, {'zoom': 1.1}]])     # as JSON holds them
    assert k.keyframes == k.motion() == [(0, {'zoom': 1.0}), (9, {'zoom': 1.1})]
    assert RenderConfig(steps=3, size=[18, 32]) == RenderConfig(steps=3, size=(18, 32)) and RenderConfig(steps=3, size='24').size == 24
    assert RenderConfig(steps=3, zoom=1.02, center=('0.5', 0)).motion() == {'zoom': 1.02, 'center': (0.5, 0.0)}
    assert RenderConfig(steps=3).motion() is None
    with pytest.raises(ConfigError) as e: RenderConfig(steps=3, center=['1'])
    assert str(e.value).startswith('RenderConfig: center') and e.value.cli == "--center 1: expected CX CY or 'bright'"

def test_render_run_matches_cli_and_like(run, tmp_path, capsys):
    "render_run and nfp_rollout render the same frames from the same settings; --like repeats a render, flags override it."
    flags = ['--steps', '5', '--schedule', 'AAB', '--seed', '2', '--inject', '0.05', '--size', '24', '--crop', '16:9',
             '--zoom', '1.02', '--pan', '1', '0', '--dtype', 'fp32', '--crf', '20']
    code, cap = _cli(['--run', run, *flags, '--frames-dir', tmp_path / 'cli', '--out', tmp_path / 'cli.mp4',
                      '--metrics', tmp_path / 'm.json'], capsys)
    assert code == 0, cap.err
    res = render_run(tmp_path / 'py.mp4', run, steps=5, schedule='AAB', seed=2, inject=0.05, size=24, crop='16:9', zoom=1.02,
                     pan=(1, 0), dtype='fp32', crf=20, frames_dir=tmp_path / 'py', verbose=False)
    assert capsys.readouterr().out == '' and res['paths'] == [tmp_path / 'py.mp4']
    def frames(d): return [np.asarray(Image.open(f)) for f in sorted((tmp_path / d).glob('*.png'))]
    py, cli = frames('py'), frames('cli')
    assert len(py) == 6 and py[0].shape == (14, 24, 3) and all((a == b).all() for a, b in zip(py, cli))
    assert not all((py[0] == f).all() for f in py[1:])                          # it is a rollout, not a still
    m = json.loads((tmp_path / 'm.json').read_text())
    assert RenderConfig.from_metrics(tmp_path / 'm.json') == res['config'] == RenderConfig(**m['render']['config'])
    assert m['render']['argv'][:2] == ['--run', str(run)]
    # --like: the same frames again; given flags override the stored ones, a new motion replaces the stored motion
    code, cap = _cli(['--run', run, '--like', tmp_path / 'm.json', '--frames-dir', tmp_path / 'like', '--out', tmp_path / 'like.mp4'], capsys)
    assert code == 0 and all((a == b).all() for a, b in zip(py, frames('like'))) and len(frames('like')) == 6
    code, cap = _cli(['--run', run, '--like', tmp_path / 'm.json', '--steps', '3', '--rotate', '2', '--out', tmp_path / 'l2.mp4',
                      '--metrics', tmp_path / 'm2.json'], capsys)
    c2 = RenderConfig.from_metrics(tmp_path / 'm2.json')
    assert code == 0 and read_video(tmp_path / 'l2.mp4').shape == (4, 14, 24, 3)
    assert (c2.steps, c2.rotate, c2.zoom, c2.pan, c2.seed, c2.schedule) == (3, 2.0, None, None, 2, 'AAB')
    # keyframes from a file are stored inline, so the record re-renders without the file
    (tmp_path / 'k.json').write_text(json.dumps([[0, {'zoom': 1.0}], [4, {'zoom': 1.05}]]))
    render_run(tmp_path / 'k.mp4', run, steps=2, keyframes=tmp_path / 'k.json', metrics=tmp_path / 'mk.json', verbose=False)
    assert RenderConfig.from_metrics(tmp_path / 'mk.json').keyframes == [(0, {'zoom': 1.0}), (4, {'zoom': 1.05})]
    # the Python entry refuses bad input before any work, as the command does
    for kw, msg in ((dict(steps=3, stepz=1), 'unknown render setting(s) stepz'), (dict(steps=3, start=1, noise=True), 'alternatives'),
                    (dict(steps=0), 'steps must be positive'), (dict(), 'steps is required')):
        with pytest.raises(ConfigError, match=re.escape(msg)): render_run(tmp_path / 'x.mp4', run, **kw)
    assert not (tmp_path / 'x.mp4').exists()


# --- the edge cases of the examples in nbs/10_rollout.ipynb (the notebook keeps a short example of each) ---
import torch.nn.functional as F
from fastcore.test import test_eq, test_ne, test_fail, test_close
test_eq.__test__ = test_ne.__test__ = test_fail.__test__ = test_close.__test__ = False   # fastcore's checks: not tests for pytest to collect
from nfp_nb.rollout import chain_of, chain_steps, join_names, split_strength, with_strength, start_size
from nfp_nb.rollout import LoopMotion, apply_motion, motion_at
from nfp_nb.sample import sample_video

class Sharpen(nn.Module):
    "The notebook's stand-in restorer: unsharp mask."
    def forward(self, x): return (x + 0.5 * (x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))).clamp(-1, 1)

class Drift(nn.Module):
    "The notebook's stand-in predictor: moves the frame one pixel right and blurs it a little."
    def forward(self, x):
        x = torch.roll(x, 1, -1)
        return 0.6 * x + 0.4 * F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

def test_schedule_patterns_chains_and_errors(A):
    B = Sharpen()
    s = parse_schedule('AAAB', {'A': A, 'B': B})
    test_eq([s(i) for i in range(6)], list('AAABAA'))
    test_eq(parse_schedule('pred,pred,fix', ['pred', 'fix'])(2), 'fix')
    test_eq(parse_schedule(lambda i: 'B' if i % 10 == 9 else 'A', 'AB')(19), 'B')
    test_fail(lambda: parse_schedule('AAC', {'A': A, 'B': B}), contains="names C, not among the networks given: A, B")
    test_fail(lambda: parse_schedule('AB', {'A': A}), contains="names B")
    test_fail(lambda: parse_schedule('', {'A': A}), contains="expected a pattern")
    test_eq([parse_schedule('AA[AB]', 'AB')(i) for i in range(4)], ['A', 'A', 'A+B', 'A'])   # a chain is one step
    test_eq(parse_schedule('[AAB]', 'AB')(5), 'A+A+B')
    test_eq(parse_schedule('pred,pred+fix', ['pred', 'fix'])(1), 'pred+fix')
    test_eq(chain_of('A+A+B'), ['A', 'A', 'B'])
    test_fail(lambda: parse_schedule('A[AC]', 'AB'), contains="names C")
    test_fail(lambda: parse_schedule('A[AB', 'AB'), contains="never closed")
    test_eq((join_names(['A', 'B']), join_names([])), ('A, B', '(none)'))      # how the errors list networks

def test_schedule_strengths():
    test_eq(parse_schedule('[AB@0.25]', 'AB')(3), 'A+B@0.25')
    test_eq(chain_steps('A+B@0.25'), [('A', None), ('B', 0.25)])
    test_eq(parse_schedule('AAAB@.5', 'AB')(3), 'B@.5')
    test_eq(parse_schedule('pred,pred+fix@0.5', ['pred', 'fix'])(1), 'pred+fix@0.5')
    test_fail(lambda: parse_schedule('[AB@3]', 'AB'), contains='must be in [0, 2]')
    test_fail(lambda: parse_schedule('@0.5A', 'AB'), contains="must follow a network letter")
    test_eq(split_strength('AA[AB@0.5]'), ('AA[AB]', {'B': 0.5}))
    test_eq(with_strength('[AB]', {'B': 0.25}), '[AB@0.25]')
    test_eq(with_strength('AAAB', {'B': 1.0}), 'AAAB')
    test_eq(with_strength('pred,pred+fix', {'fix': 0.5}), 'pred,pred+fix@0.5')
    test_fail(lambda: split_strength('[AB@0.5]AB@0.25'), contains='more than one strength')

def test_load_start_kinds_and_sizes():
    frames = (np.random.default_rng(0).random((5, 40, 64, 3)) * 255).astype(np.uint8)
    test_eq(load_start(2, store=frames).shape, (1, 40, 64, 3))
    test_eq(load_start([0, 3], store=frames, size=32).shape, (2, 32, 51, 3))
    test_eq((start_size(40, 64, 32), start_size(40, 64, (24, 48)), start_size(40, 64, None)), ((32, 51), (24, 48), (40, 64)))
    test_eq(load_start('noise', size=(32, 48), batch=3).shape, (3, 32, 48, 3))
    test_eq(load_start(to_float(frames[0])).numpy()[0], frames[0])
    test_fail(lambda: load_start(9, store=frames), contains='out of range')
    test_fail(lambda: load_start('missing.png'), contains='start image not found')

def test_loop_motion_and_keyframes():
    x = torch.linspace(-1, 1, 32).view(1, 1, 1, 32).expand(1, 3, 16, 32).contiguous()   # a horizontal ramp
    test_close(apply_motion(x, LoopMotion()), x)
    moved = apply_motion(x, LoopMotion(pan=(4, 0)))                 # 4 px to the right: each column shows what was 4 to its left
    test_close(moved[..., 8:], x[..., 4:-4], eps=1e-4)
    z = apply_motion(x, LoopMotion(zoom=2.0))                        # zoom in 2x about the middle: the picture twice as large,
    assert abs(float(z[0, 0, 8, 21] - z[0, 0, 8, 10]) / float(x[0, 0, 8, 21] - x[0, 0, 8, 10]) - 0.5) < 0.03   # the ramp half as steep
    test_close(apply_motion(x, LoopMotion(rotate=360.0)), x, eps=1e-4)
    keys = [(0, {'zoom': 1.0}), (10, {'zoom': 1.1, 'rotate': 2.0})]
    test_close(motion_at(keys, 5).zoom, 1.05); test_eq(motion_at(keys, 50).rotate, 2.0); test_eq(motion_at(keys, 0).zoom, 1.0)
    test_eq(motion_at(lambda s: {'zoom': 1 + s / 100}, 3).zoom, 1.03)
    spot = -torch.ones(1, 3, 32, 32); spot[..., 2:6, 24:30] = 1     # a bright patch top right: 'bright' zooms towards it
    assert float(apply_motion(spot, LoopMotion(zoom=1.5, center='bright'))[..., 2:6, 24:30].mean()) > 0.9
    test_fail(lambda: motion_at({'zom': 1.1}, 0), contains='unknown field(s) zom')

def test_rollout_named_networks_and_chains():
    B = Sharpen()
    src = sample_video(n_frames=24, size=64, seed=0)        # the built-in sample video, 24 frames of 64 px
    ra = rollout(0, {'A': Drift()}, 'A', steps=24, store=src)
    rab = rollout(0, {'A': Drift(), 'B': B}, 'AAB', steps=24, store=src)
    test_eq(ra.shape, (25, 64, 64, 3)); test_eq(ra.frames.dtype, np.uint8)
    test_eq(ra[0], src[0]); test_eq(rab.names[:3], ['A', 'A', 'B'])
    rc = rollout(0, {'A': Drift(), 'B': B}, '[AB]', steps=3, store=src, dtype='fp32')   # every frame is B(A(x))
    with torch.inference_mode(): want = to_uint8(B(Drift()(B(Drift()(to_float(torch.from_numpy(src[:1])))))))[0].numpy()
    test_eq(rc.shape, (4, 64, 64, 3)); test_eq(rc.names, ['A+B'] * 3)
    assert np.abs(rc[2].astype(int) - want).max() <= 1

def test_rollout_seeds_batches_schedules_chunks_and_strength(A):
    B, A2 = Sharpen(), tiny(1)
    src = sample_video(n_frames=24, size=64, seed=0)
    r1 = rollout('noise', A, steps=5, noise=0.1, seed=3, size=32)
    test_eq(r1.frames, rollout('noise', A, steps=5, noise=0.1, seed=3, size=32).frames)
    test_ne(r1.frames[-1], rollout('noise', A, steps=5, noise=0.1, seed=4, size=32).frames[-1])
    rb = rollout([0, 8], A, steps=4, store=src)
    test_eq(rb.shape, (2, 5, 64, 64, 3))
    assert np.abs(rb.frames[1].astype(int) - rollout(8, A, steps=4, store=src).frames.astype(int)).max() <= 1
    two = rollout(0, {'A': A, 'A2': A2}, ['A', 'A2'], steps=3, store=src)   # two checkpoints, one batch
    test_eq(two.shape, (2, 4, 64, 64, 3)); test_eq(two.names[0], ['A', 'A2'])
    assert np.abs(two.frames[1].astype(int) - rollout(0, A2, steps=3, store=src).frames).max() <= 1
    chunks = list(iter_rollout(0, A, steps=20, store=src, chunk=8))
    test_eq([len(c) for c in chunks], [8, 8, 5]); test_eq(np.concatenate(chunks), rollout(0, A, steps=20, store=src).frames)
    test_fail(lambda: rollout(0, A, steps=0, store=src), contains='steps must be positive')

    half = rollout('noise', {'A': A, 'B': B}, '[AB@0.5]', steps=3, size=32).frames     # a strength in the schedule ...
    test_eq(half, rollout('noise', {'A': A, 'B': B}, '[AB]', steps=3, size=32, blend={'B': 0.5}).frames)   # ... is `blend`
    test_ne(half, rollout('noise', {'A': A, 'B': B}, '[AB]', steps=3, size=32).frames)
