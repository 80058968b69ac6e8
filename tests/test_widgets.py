"Widget panels driven from Python (no browser): preview updates, the incremental cache, cancellation, errors, export."
import datetime, io, json, os, time
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from nfp_nb.checkpoint import save_checkpoint
from nfp_nb.data import FrameStore
from nfp_nb.models import build_generator, get_preset
from nfp_nb.video import probe_video
from nfp_nb.tracks import RolloutTrack
from nfp_nb.widgets import RolloutPanel, FramesViewer, TrainingMonitor, LivePlot, encode_image, preview_hw

pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.py

def _save(run, net, epoch, seed, mtime):
    torch.manual_seed(seed)
    stem = save_checkpoint(run/net/f'ep{epoch:04d}', build_generator(get_preset('tiny').generator), meta={'epoch': epoch})
    os.utime(run/net/f'ep{epoch:04d}.json', (mtime, mtime))
    return stem

@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    "A run with 12 prepared 32 px frames, two untrained tiny A checkpoints and one B."
    run = tmp_path_factory.mktemp('runs')/'tiny'
    FrameStore.prepare(None, run=run, size=32, max_frames=12, progress=False)
    _save(run, 'A', 1, 1, 1e9); _save(run, 'A', 2, 2, 1e9 + 1); _save(run, 'B', 1, 3, 1e9 + 2)
    return run

@pytest.fixture
def panel(tiny_run):
    p = RolloutPanel(tiny_run, preview_size=32, steps=4)
    assert p.wait(60)
    yield p
    p.close()

def _count_calls(panel):
    "Count forward calls of every network the panel has loaded so far."
    calls = [0]
    for net in panel._nets.values(): net.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    return calls

def test_defaults_newest_first(panel, tiny_run):
    labels = [o[0] for o in panel.a.options]
    assert labels[0] == 'tiny/B/ep0001' and labels.index('tiny/A/ep0002') < labels.index('tiny/A/ep0001')
    assert panel.a.value == str(tiny_run/'A'/'ep0002') and panel.b.value == str(tiny_run/'B'/'ep0001')
    assert panel.b.options[0] == ('none', '') and panel.a2.value == '' and panel.blend.disabled
    assert panel.settings()['schedule'] == 'AAAB'
    assert 'nfp-steps' in panel.steps._dom_classes and 'nfp-preview' in panel.preview._dom_classes

def test_steps_forward_computes_only_new_steps_and_back_is_a_cache_hit(panel):
    calls = _count_calls(panel)
    b4 = panel.preview.value
    assert b4[:2] == b'\xff\xd8' and panel.shown[1] == 4
    panel.steps.value = 7; assert panel.wait(60)
    assert calls[0] == 3 and panel.preview.value != b4 and panel.shown[1] == 7
    assert 'frame 7 / 7' in panel.status.value
    panel.steps.value = 4                        # back: instant, no network call
    assert calls[0] == 3 and panel.preview.value == b4 and not panel.track.busy
    panel.frame.value = 1                        # scrubbing: no network call either
    assert calls[0] == 3 and panel.shown[1] == 1
    panel.steps.value = 7; assert panel.wait(60)
    assert calls[0] == 3                         # forward again over kept frames: still nothing
    # the frames equal one uninterrupted rollout of the same settings
    from nfp_nb.rollout import rollout
    s = panel.settings()
    ref = rollout(s['start'], panel._nets_for(s), s['schedule'], 7, store=panel.store, size=s['size']).frames
    np.testing.assert_array_equal(np.stack(panel.track.frames[:8]), ref)

def test_checkpoint_change_is_a_new_track_and_returning_is_cached(panel, tiny_run):
    first = panel.track
    b = panel.preview.value
    panel.a.value = str(tiny_run/'A'/'ep0001'); assert panel.wait(60)
    assert panel.track is not first and len(panel.tracks) == 2 and panel.preview.value != b
    n = panel.steps_computed
    panel.a.value = str(tiny_run/'A'/'ep0002')
    assert panel.track is first and panel.steps_computed == n and panel.preview.value == b

def test_newer_request_cancels_stale_work(panel, tiny_run):
    panel.steps.max = 100_000
    panel.steps.value = 100_000                  # far more than can finish during this test
    time.sleep(0.3)
    stale = panel.track
    assert stale.busy
    panel.a.value = str(tiny_run/'A'/'ep0001')   # newer request: the stale track stops after its current step
    assert panel.track is not stale
    t0 = time.monotonic()
    while stale.busy and time.monotonic() - t0 < 10: time.sleep(0.02)
    assert not stale.busy
    done = stale.computed; time.sleep(0.3)
    assert stale.computed == done < 100_000      # no stale work left running
    panel.steps.value = 3; assert panel.wait(60)
    panel.a.value = str(tiny_run/'A'/'ep0002')   # the paused track is kept: its frames show at once
    assert panel.track is stale and panel.shown[1] == 3 and not stale.busy

def test_blend_upload_noise_and_seed(panel, tiny_run):
    panel.a2.value = str(tiny_run/'A'/'ep0001'); panel.blend.value = 0.3; assert panel.wait(60)
    assert not panel.blend.disabled and panel.settings()['blend'] == 0.3 and panel.error.value == ''
    b = panel.preview.value
    png = io.BytesIO(); Image.fromarray(np.full((40, 64, 3), 200, np.uint8)).save(png, format='PNG')
    panel.upload.value = [dict(name='start.png', type='image/png', size=len(png.getvalue()),
                               content=memoryview(png.getvalue()),
                               last_modified=datetime.datetime.now(datetime.timezone.utc))]
    assert panel.start_mode.value == 'image' and panel.wait(60)
    assert panel.track.frames[0].shape == (32, 48, 3) and panel.preview.value != b
    panel.start_mode.value = 'noise'; assert panel.wait(60)
    n1 = panel.track.frames[0]
    panel.seed.value = 1; assert panel.wait(60)
    assert not np.array_equal(n1, panel.track.frames[0]) and panel.error.value == ''

def test_errors_show_in_red_and_the_panel_recovers(panel, tiny_run):
    panel.schedule.value = 'AAZ'
    assert 'AAZ' in panel.error.value and '#c62828' in panel.error.value
    panel.schedule.value = 'AB'; assert panel.wait(60) and panel.error.value == ''
    # a corrupt checkpoint: the weights file truncated after listing
    bad = _save(tiny_run, 'A', 9, 9, 1e9 + 3)
    panel.refresh()
    w = next((tiny_run/'A').glob('ep0009*.safetensors'))
    w.write_bytes(w.read_bytes()[:100])
    panel.a.value = str(bad); panel.wait(60)
    assert 'ep0009' in panel.error.value and 'color:#c62828' in panel.error.value
    panel.a.value = str(tiny_run/'A'/'ep0002'); assert panel.wait(60) and panel.error.value == ''
    for f in (tiny_run/'A').glob('ep0009*'): f.unlink()

def test_strength_and_the_runs_loop(panel, tmp_path):
    "B's strength slider is written into the schedule; a run that chose its loop (RUN/loop.json) opens with it."
    from nfp_nb.loops import choose_loop
    panel.strength.value = 0.5; assert panel.wait(60)
    assert panel.settings()['schedule'] == 'AAAB@0.5'
    panel.strength.value = 1.0; assert panel.wait(60) and panel.settings()['schedule'] == 'AAAB'
    run = tmp_path/'looped'                      # a run of its own: the loop file changes how every panel on it opens
    FrameStore.prepare(None, run=run, size=32, max_frames=12, progress=False)
    _save(run, 'A', 1, 1, 1e9); _save(run, 'B', 1, 3, 1e9 + 1)
    rec = choose_loop(run, candidates=('A', '[AB@0.5]'), steps=48, starts=1, quiet=True)
    p2 = RolloutPanel(run, preview_size=32, steps=2, drift=False)
    try: assert (p2.loop, p2.settings()['schedule']) == (rec['schedule'], rec['schedule'])
    finally: p2.close()

def test_zoom_and_turn_make_their_own_track_equal_to_a_rollout(panel):
    "The motion sliders (`LoopMotion` inside the loop) are part of the settings: a new track, the same frames as `rollout`."
    from nfp_nb.rollout import rollout
    panel.steps.value = 5; assert panel.wait(60)
    still = panel.track
    panel.zoom.value, panel.rotate.value = 1.05, 2.0; assert panel.wait(60)
    s = panel.settings()
    assert panel.track is not still and s['motion'] == {'zoom': 1.05, 'rotate': 2.0, 'center': (0.0, 0.0)}
    ref = rollout(s['start'], panel._nets_for(s), s['schedule'], 5, store=panel.store, size=s['size'], motion=s['motion']).frames
    np.testing.assert_array_equal(np.stack(panel.track.frames[:6]), ref)
    panel.seek.value = True; assert panel.wait(60) and panel.settings()['motion']['center'] == 'bright'
    panel.zoom.value, panel.rotate.value, panel.seek.value = 1.0, 0.0, False; assert panel.wait(60)
    assert panel.track is still and panel.settings()['motion'] is None

def test_export_writes_a_valid_mp4(panel, tmp_path):
    panel.steps.value = 6; assert panel.wait(60)
    assert panel.ex_size.value == 0 and 'the video you previewed' in panel.ex_note.value      # the default: what was seen
    panel.ex_upscale.value = 2; assert '×2' in panel.ex_note.value
    panel.ex_size.value = 512; assert 're-rolls at 512 px' in panel.ex_note.value and '<b>not</b>' in panel.ex_note.value
    panel.ex_size.value, panel.ex_upscale.value = 0, 1
    out = panel.export(tmp_path/'a.mp4', crop=True, factor=2)
    info = probe_video(out)
    assert (info.n_frames, info.height, info.width) == (7, 36, 64)
    assert 'a.mp4' in panel.ex_link.value and panel.ex_progress.value == 6 and panel.error.value == ''
    out = panel.export(tmp_path/'loop.mp4', size=48, loop=True, crop=False, factor=1, wait=True)
    assert probe_video(out).height == 48
    (tmp_path/'file').write_text('')
    with pytest.raises(OSError): panel.export(tmp_path/'file'/'x.mp4')      # a plain call raises ...
    panel._safe(panel.export, tmp_path/'file'/'y.mp4', wait=False)          # ... the button shows it in red
    assert 'file' in panel.error.value and '#c62828' in panel.error.value

def test_drift_plot_falls_back_to_png_and_follows_the_frame(panel):
    assert panel.wait(60, plot=True)
    assert not panel.plot.interactive and bytes(panel.plot.widget.value[:4]) == b'\x89PNG'
    n, png = panel.plot.renders, panel.plot.widget.value
    assert len(panel._lines['texture'].get_xdata()) == 5            # frames 0..4 measured
    panel.frame.value = 1; assert panel.wait(60, plot=True)
    assert panel.plot.renders > n and panel.plot.widget.value != png and list(panel._marker.get_xdata()) == [1, 1]

def test_no_checkpoints_is_a_message(tmp_path):
    (tmp_path/'empty').mkdir()
    p = RolloutPanel(tmp_path/'empty', preview_size=32)
    assert 'no checkpoints found' in p.error.value
    p.close()

def test_frames_viewer_scrubs(tiny_run):
    v = FramesViewer(tiny_run)
    b = v.image.value
    v.frame.value = 11
    assert v.image.value != b and 'frame 11 / 11' in v.info.value

def test_training_monitor_follows_a_run(tmp_path):
    run = tmp_path/'r'
    G = build_generator(get_preset('tiny').generator)
    mon = TrainingMonitor(run=run, net='A', plot_interactive=False, every=0.05)
    assert not mon.update()
    for step in (10, 20):
        save_checkpoint(run/'A'/f'step{step:06d}', G, meta={'losses': dict(step=step, epoch=step / 10, G=1.0 / step, D=0.5, FM=2.0)})
    (run/'A'/'samples').mkdir()
    Image.new('RGB', (20, 10), 'red').save(run/'A'/'samples'/'ep0002.png')
    mon.start(); time.sleep(0.4); mon.stop()
    assert [r['step'] for r in mon.history()] == [10, 20]
    assert 'step 20' in mon.status.value and mon.image.value[:4] == b'\x89PNG' and mon.plot.renders >= 1

def test_training_monitor_reads_losses_and_fidelity_from_checkpoints(tmp_path):
    "Following a run: losses and one-step fidelity come from the checkpoints' JSON, the grid from samples/; a poll with nothing new redraws nothing."
    folder = tmp_path/'followed'/'A'
    G = build_generator(get_preset('tiny').generator)
    for step in (10, 20):
        save_checkpoint(folder/f'step{step:08d}', G, meta={'losses': dict(step=step, epoch=step / 10, G=4 - step / 10, D=0.5, FM=3 - step / 20),
                                                           'fidelity': dict(step=step, texture=0.5 - step / 100, spread_texture=0.1)})
    (folder/'samples').mkdir()
    Image.new('RGB', (32, 32), 'blue').save(folder/'samples'/'step00000020.png')
    mon = TrainingMonitor(run=tmp_path/'followed', net='A', plot_interactive=False)
    assert mon.update() and not mon.update()             # the second poll finds nothing new
    assert [r['step'] for r in mon.history()] == [10, 20]
    assert [r['texture'] for r in mon.fidelity()] == [0.4, 0.3]
    assert 'step 20' in mon.status.value and bytes(mon.image.value[:4]) == b'\x89PNG'

def test_helpers():
    assert preview_hw(1080, 1920, 256) == (256, 448)
    assert Image.open(io.BytesIO(encode_image(np.zeros((8, 8, 3), np.uint8), 'png'))).size == (8, 8)
    p = LivePlot(interactive=False); p.ax.plot([1, 2]); p.draw()
    assert p.widget.value[:4] == b'\x89PNG'

def test_caches_are_bounded_by_bytes(tiny_run):
    "Moving the blend slider through many values and starting many rollouts keeps both caches within their byte limits."
    from nfp_nb.widgets import _net_bytes
    p = RolloutPanel(tiny_run, preview_size=32, steps=3, nets_mb=0.2, cache_mb=0.05)
    try:
        assert p.wait(60)
        one = _net_bytes(next(iter(p._nets.values())))
        p.a2.value = str(tiny_run/'A'/'ep0001')
        for v in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
            p.blend.value = v; assert p.wait(60)
        assert sum(map(_net_bytes, p._nets.values())) <= max(p.nets_bytes, one)
        assert len(p._nets) < 9                      # 3 checkpoints + 7 blends would be 10 without the bound
        for seed in range(6):
            p.seed.value = seed; assert p.wait(60)
        assert len(p.tracks) >= 1 and sum(t.nbytes for t in p.tracks.values()) <= p.cache_bytes + p.track.nbytes
        assert p.track is next(reversed(p.tracks.values()))   # the current rollout is never the one dropped
    finally: p.close()

def _live_modules(cls) -> dict:
    import gc
    gc.collect()
    return {id(o): o for o in gc.get_objects() if type(o) is cls}

def test_no_network_outlives_the_net_cache(tiny_run):
    """`nets_mb` bounds every network the panel keeps: once the blend slider has moved through several values, the
    networks alive are the ones in the cache (a paused rollout must not hold the blend it was made with)."""
    p = RolloutPanel(tiny_run, preview_size=32, steps=3, nets_mb=0.2, compile=False, drift=False)
    try:
        assert p.wait(60)
        cls = type(next(iter(p._nets.values())))
        p.b.value = ''                           # A alone: the current rollout's one network is the newest, cached, blend
        assert p.wait(60) and p.settings()['b'] is None and p.error.value == ''
        before = set(_live_modules(cls)) - {id(n) for n in p._nets.values()}   # other tests' leftovers, if any
        p.a2.value = str(tiny_run/'A'/'ep0001')
        for v in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
            p.blend.value = v; assert p.wait(60)
        kept = {id(n) for n in p._nets.values()}
        extra = set(_live_modules(cls)) - before - kept
        assert not extra, f"{len(extra)} networks alive outside the net cache ({len(kept)} cached, {len(p.tracks)} rollouts kept)"
    finally: p.close()

def test_ema_weights_checkbox(tmp_path):
    "The panel rolls out the EMA weights when asked; checkpoints saved without EMA fall back to their raw weights."
    from nfp_nb.data import FrameStore
    from nfp_nb.models import build_generator, get_preset
    from nfp_nb.checkpoint import save_checkpoint
    run = tmp_path/'e'
    FrameStore.prepare(None, run=run, size=32, max_frames=8, progress=False)
    torch.manual_seed(0); G = build_generator(get_preset('tiny').generator)
    torch.manual_seed(1); E = build_generator(get_preset('tiny').generator)
    save_checkpoint(run/'A'/'ep0001', G, ema=E, meta={'epoch': 1})
    p = RolloutPanel(run, steps=3, drift=False)
    assert p.wait(60)
    raw = p.track.frames[3]
    p.ema.value = True; assert p.wait(60)
    assert p.settings()['ema'] and not np.array_equal(p.track.frames[3], raw)
    from nfp_nb.rollout import rollout
    s = p.settings()
    np.testing.assert_array_equal(p.track.frames[3], rollout(s['start'], E.eval(), 'A', 3, store=p.store, size=s['size']).frames[3])
    save_checkpoint(run/'A'/'ep0002', G, meta={'epoch': 2}); p.refresh(); p.a.value = str(run/'A'/'ep0002'); assert p.wait(60)
    np.testing.assert_array_equal(p.track.frames[3], raw)                   # no EMA saved: the raw weights
    p.close() if hasattr(p, 'close') else None

# --- background compile (tracker issue 17): eager at once, compiled when idle, swapped in whole ---

def _open_tracks_busy():
    from nfp_nb.tracks import _tracks
    return any(t.busy for t in list(_tracks) if not t.closed)

def _swaps(p):
    "The panel's `SwapNet`s of the current settings, by role."
    return {k: p.compiler.swaps.get(key) for k, key in p._compile_keys(p.settings()).items()}

def test_background_compile_swaps_in_and_matches_eager(tiny_run):
    "A real torch.compile (fp32): once warm, later steps of the same track and new tracks run compiled, with eager's frames."
    from nfp_nb.rollout import rollout
    p = RolloutPanel(tiny_run, preview_size=32, steps=4, dtype='fp32', compile=True, drift=False)
    try:
        assert p.wait(60)
        assert p.compiler.wait(240), p.compile_status.value
        sw = _swaps(p)
        assert {k: v.state for k, v in sw.items()} == {'A': 'ready', 'B': 'ready'}, {k: v.error for k, v in sw.items()}
        assert 'compiled ✓' in p.compile_status.value and p.error.value == ''
        before = {k: dict(v.calls) for k, v in sw.items()}
        from torch._dynamo.utils import counters
        graphs = counters['stats']['unique_graphs']      # the preview's thread must never (re)compile
        p.steps.value = 8; assert p.wait(60)             # the same, paused track continues: compiled from its next step
        assert sw['A'].calls['compiled'] - before['A']['compiled'] == 3 and sw['B'].calls['compiled'] - before['B']['compiled'] == 1
        assert sw['A'].calls['eager'] == before['A']['eager'] and sw['B'].calls['eager'] == before['B']['eager']
        s = p.settings()
        ref = rollout(s['start'], p._nets_for(s), s['schedule'], 8, store=p.store, size=s['size'], dtype='fp32').frames
        np.testing.assert_array_equal(np.stack(p.track.frames[:5]), ref[:5])           # the eager part: exact
        assert np.abs(np.stack(p.track.frames[:9]).astype(int) - ref).max() <= 1        # compiled: fp32 rounding
        p.seed.value = 1; assert p.wait(60)              # a new track shares the copies (its start frame is a permuted view)
        assert counters['stats']['unique_graphs'] == graphs     # the same warm graph: no stride or dispatch-key recompile
        assert sw['A'].calls['compiled'] - before['A']['compiled'] == 9 and sw['A'].calls['eager'] == before['A']['eager']
        s = p.settings()
        ref = rollout(s['start'], p._nets_for(s), s['schedule'], 8, store=p.store, size=s['size'], seed=1, dtype='fp32').frames
        assert np.abs(np.stack(p.track.frames[:9]).astype(int) - ref).max() <= 1
        # another checkpoint for A: A's copy is dropped at once (B keeps its own); the new A compiles when idle
        p.a.value = str(tiny_run/'A'/'ep0001')
        assert sw['A'].state == 'eager' and sw['A']._fast == () and sw['B'].state == 'ready'
        assert p.wait(60) and p.compiler.wait(240)
        new = _swaps(p)
        assert new['A'] is not sw['A'] and new['A'].state == 'ready' and new['B'] is sw['B']
        n = new['A'].calls['compiled']; p.steps.value = 10; assert p.wait(60)
        assert new['A'].calls['compiled'] > n and sw['A'].state == 'eager' and sw['A']._fast == ()   # the old copy stays dropped
        p.ema.value = True                                   # the EMA checkbox: other networks, both copies dropped
        assert new['A'].state == 'eager' and sw['B'].state == 'eager'
        assert p.wait(60) and p.compiler.wait(240)
    finally: p.close()

class _Spy(torch.nn.Module):
    "A stand-in compiled copy: the eager network, counted; records whether a preview was computing when it was made."
    made = []
    def __init__(self, net):
        super().__init__(); self.net = net; _Spy.made.append(_open_tracks_busy())
    def forward(self, *a): return self.net(*a)

@pytest.fixture
def spy_compile(monkeypatch):
    import nfp_nb.tracks
    _Spy.made = []
    monkeypatch.setattr(nfp_nb.tracks, '_torch_compile', _Spy)
    return _Spy.made

def test_compile_starts_only_when_the_preview_is_idle(tiny_run, spy_compile):
    "The first preview runs alone: the compiler waits for it to finish. A new size invalidates, and compiles again when idle."
    p = RolloutPanel(tiny_run, preview_size=32, steps=40, compile=True, drift=False)
    try:
        assert p.wait(60) and p.compiler.wait(60)
        assert spy_compile == [False, False]                 # A and B, each made while no preview was computing
        assert p.track.computed == 40 and 'compiled ✓' in p.compile_status.value
        sw = _swaps(p)
        p.set_start_image(np.full((40, 64, 3), 90, np.uint8))     # another frame size: (32, 48)
        assert all(v.state == 'eager' and v._fast == () for v in sw.values())
        assert p.wait(60) and p.compiler.wait(60)
        assert spy_compile == [False] * 4 and all(v.state == 'ready' for v in _swaps(p).values())
        assert _swaps(p)['A'].shape == (1, 3, 32, 48)
    finally: p.close()

def test_compile_failure_falls_back_to_eager_with_a_note(tiny_run, monkeypatch):
    "A compiler that raises (as torch.compile does at its first call without a C++ compiler): eager, and the status says so."
    import nfp_nb.tracks
    from nfp_nb.rollout import rollout
    class Broken(torch.nn.Module):
        def forward(self, *a): raise RuntimeError("inductor: C++ compile failed\nlong log")
    monkeypatch.setattr(nfp_nb.tracks, '_torch_compile', lambda net: Broken())
    p = RolloutPanel(tiny_run, preview_size=32, steps=4, compile=True, drift=False)
    try:
        assert p.wait(60) and p.compiler.wait(60)
        assert 'compile failed: eager' in p.compile_status.value and 'C++ compile failed' in p.compile_status.value
        assert p.error.value == ''                           # not an error of the preview
        p.steps.value = 7; assert p.wait(60)
        assert all(v.state == 'failed' and v.calls['compiled'] == 0 for v in _swaps(p).values())
        s = p.settings()
        np.testing.assert_array_equal(np.stack(p.track.frames[:8]),
                                      rollout(s['start'], p._nets_for(s), s['schedule'], 7, store=p.store, size=s['size']).frames)
        assert 'frame 7 / 7' in p.status.value
    finally: p.close()

def test_auto_compiles_only_what_pays(tiny_run, spy_compile, monkeypatch):
    "compile='auto' follows `compile_pays` per network (frames run at its size); compile=False wraps nothing."
    import nfp_nb.rollout
    p = RolloutPanel(tiny_run, preview_size=32, steps=4, drift=False)      # 'auto': 4 frames of 32 px never pay
    try:
        assert p.wait(60) and p.compiler.wait(10)
        time.sleep(0.3)
        assert spy_compile == [] and p.compile_status.value == '' and all(v.state == 'eager' for v in _swaps(p).values())
        monkeypatch.setattr(nfp_nb.rollout, 'COMPILE_BREAK_EVEN', 8 * 32 * 32)   # break even at 8 frames
        p.steps.value = 11; assert p.wait(60) and p.compiler.wait(30)      # AAAB over 11 steps: A ran 9 frames, B 2
        sw = _swaps(p)
        assert (sw['A'].state, sw['B'].state) == ('ready', 'eager') and len(spy_compile) == 1
        assert 'compiled ✓' in p.compile_status.value
    finally: p.close()
    q = RolloutPanel(tiny_run, preview_size=32, steps=3, compile=False, drift=False)
    try:
        assert q.wait(60) and len(q.compiler.swaps) == 0 and q.compiler.thread is None
    finally: q.close()
    with pytest.raises(Exception, match='compile='): RolloutPanel(tiny_run, compile='yes')
