"""Frame cache, pair dataset and `nfp_prep`: every kind of bad input gives one clear line, exit status 2,
a package error from the API, and no cache left behind as if valid."""
import os, sys, json, subprocess
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from nfp_nb.core import NFPError, SourceError, ConfigError, CacheError
from nfp_nb.video import write_video
from nfp_nb.sample import sample_video, write_sample
from nfp_nb.data import FrameStore, PairDataset, make_loader
from nfp_nb.cli import prep_main

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='module')
def video(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp('src')/'clip.mp4', n_frames=12, size=48, seed=1, fps=24)

def make_bad(tmp_path, kind, video):
    "Create the bad source `kind`; return its path."
    if kind == 'missing': return tmp_path/'missing.mp4'
    if kind == 'empty_dir': p = tmp_path/'empty_dir'; p.mkdir(); return p
    if kind == 'text': p = tmp_path/'text.mp4'; p.write_text('this is not a video\n'); return p
    if kind == 'zero': p = tmp_path/'zero.mp4'; p.touch(); return p
    if kind == 'truncated':
        data = Path(video).read_bytes(); p = tmp_path/'truncated.mp4'; p.write_bytes(data[:len(data)//2]); return p
    if kind == 'bad_image':
        d = tmp_path/'imgs'; d.mkdir()
        for i, f in enumerate(sample_video(3, 32, seed=2)): Image.fromarray(f).save(d/f'f{i}.png')
        (d/'f3.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated'); return d/'f3.png'
    raise ValueError(kind)

BAD = ['missing', 'empty_dir', 'text', 'zero', 'truncated', 'bad_image']

def no_cache_left(run:Path):
    "No cache (or temporary file) in `run/frames`."
    d = run/'frames'
    return not d.exists() or not [p.name for p in d.iterdir()]

def check_cli(capfd, argv, *needles):
    "Run prep_main in-process: exit 2, exactly one stderr line naming `needles`, no traceback."
    with pytest.raises(SystemExit) as e: prep_main(argv)
    out, err = capfd.readouterr()
    assert e.value.code == 2, (out, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert 'Traceback' not in err
    for n in needles: assert n in lines[0], lines[0]
    return lines[0]

@pytest.mark.parametrize('kind', BAD)
def test_bad_source_api(tmp_path, video, kind):
    p = make_bad(tmp_path, kind, video)
    src = p.parent if kind == 'bad_image' else p
    with pytest.raises(SourceError) as e: FrameStore.prepare(src, run=tmp_path/'run', size=16, progress=False)
    assert p.name in str(e.value) and '\n' not in str(e.value)
    assert no_cache_left(tmp_path/'run')

@pytest.mark.parametrize('kind', BAD)
def test_bad_source_cli(tmp_path, video, kind, capfd):
    p = make_bad(tmp_path, kind, video)
    src = p.parent if kind == 'bad_image' else p
    check_cli(capfd, [str(src), '--run', str(tmp_path/'run'), '--size', '16', '--quiet'], p.name)
    assert no_cache_left(tmp_path/'run')

def test_too_few_frames(tmp_path, video, capfd):
    store = FrameStore.prepare(video, run=tmp_path/'ok', size=16, progress=False)
    with pytest.raises(SourceError, match=r'frames\.npy: 12 frames, fewer than K\+1 = 13.*K = 12'): PairDataset(store, skip=12)
    assert len(PairDataset(store, skip=11)) == 1
    check_cli(capfd, [str(video), '--run', str(tmp_path/'run'), '--size', '16', '--skip', '20', '--quiet'], 'clip.mp4', '21')
    assert no_cache_left(tmp_path/'run')

@pytest.mark.parametrize('size', ['0', '-3', 'abc', '0x16'])
def test_bad_size(tmp_path, video, size, capfd):
    check_cli(capfd, [str(video), '--run', str(tmp_path/'run'), f'--size={size}', '--quiet'], '--size', size)
    assert no_cache_left(tmp_path/'run')
    with pytest.raises(ConfigError, match='positive'):
        FrameStore.prepare(video, run=tmp_path/'run', size=int(size) if size.lstrip('-').isdigit() else (0, 16), progress=False)

def test_unwritable_cache_parent_is_file(tmp_path, video, capfd):
    (tmp_path/'blocker').write_text('a file where a folder should be')
    run = tmp_path/'blocker'/'run'
    with pytest.raises(CacheError, match='blocker'): FrameStore.prepare(video, run=run, size=16, progress=False)
    check_cli(capfd, [str(video), '--run', str(run), '--size', '16', '--quiet'], 'blocker')
    assert (tmp_path/'blocker').read_text().startswith('a file')

@pytest.mark.skipif(os.geteuid() == 0, reason='root ignores chmod 555; the parent-is-a-file case covers unwritable caches')
def test_unwritable_cache_chmod(tmp_path, video, capfd):
    ro = tmp_path/'ro'; ro.mkdir(); ro.chmod(0o555)
    try:
        with pytest.raises(CacheError): FrameStore.prepare(video, run=ro/'run', size=16, progress=False)
        check_cli(capfd, [str(video), '--run', str(ro/'run'), '--size', '16', '--quiet'], 'ro')
    finally: ro.chmod(0o755)

def test_failed_rebuild_keeps_old_cache(tmp_path, video):
    "A source that breaks after a good build: the rebuild fails, the earlier cache is untouched."
    src = tmp_path/'v.mp4'; src.write_bytes(Path(video).read_bytes())
    s1 = FrameStore.prepare(src, run=tmp_path/'run', size=16, progress=False)
    first = np.array(s1.frames)
    data = src.read_bytes(); src.write_bytes(data[:len(data)//2])
    with pytest.raises(SourceError, match='v.mp4'): FrameStore.prepare(src, run=tmp_path/'run', size=16, progress=False)
    assert sorted(p.name for p in (tmp_path/'run'/'frames').iterdir()) == ['frames.json', 'frames.npy']
    assert np.array_equal(FrameStore.load(tmp_path/'run').frames, first)

def test_reuse_and_rebuild(tmp_path, video):
    run = tmp_path/'run'
    s = FrameStore.prepare(video, run=run, size=(16, 24), crop='center', progress=False)
    assert (len(s), s.size, s.fps) == (12, (16, 24), 24.0)
    meta = json.loads((run/'frames'/'frames.json').read_text())
    assert meta['source']['path'] == str(Path(video).resolve()) and meta['params']['size'] == [16, 24]
    stamp = meta['npy']
    assert FrameStore.prepare(video, run=run, size=(16, 24), progress=False).meta['npy'] == stamp      # reused
    s2 = FrameStore.prepare(video, run=run, size=16, crop='square', stride=3, progress=False)          # params changed
    assert (len(s2), s2.size, s2.fps) == (4, (16, 16), 8.0)

def test_pairs_deterministic(tmp_path):
    store = FrameStore.prepare(None, run=tmp_path/'run', size=24, max_frames=16, progress=False)
    a, b = PairDataset(store, skip=(1, 4), crop=16, seed=7), PairDataset(store, skip=(1, 4), crop=16, seed=7)
    for i in (0, 5, 11): assert torch.equal(a[i]['input'], b[i]['input']) and a[i]['k'] == b[i]['k']
    draws = [a.draw(i) for i in range(len(a))]
    assert [PairDataset(store, skip=(1, 4), crop=16, seed=8).draw(i) for i in range(len(a))] != draws
    a.set_epoch(3); assert [a.draw(i) for i in range(len(a))] != draws
    it = PairDataset(store, skip=(2, 2))[4]
    assert it['k'] == 2 and it['t'] == 4 and torch.equal(it['target'], torch.from_numpy(np.array(store[6])).permute(2, 0, 1).float() / 127.5 - 1)
    b1 = next(iter(make_loader(a, batch_size=4, seed=1))); b2 = next(iter(make_loader(a, batch_size=4, seed=1)))
    assert torch.equal(b1['input'], b2['input']) and b1['input'].shape == (4, 3, 16, 16)

def test_cli_subprocess(tmp_path, video):
    "The real console script: summary line on success; one stderr line and status 2 on a bad source."
    env = {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    r = subprocess.run([sys.executable, '-m', 'nfp_nb.cli', 'prep', str(video), '--run', str(tmp_path/'run'), '--size', '16'],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 1 and '12 frames, 16x16, 24 fps' in r.stdout and 'frames.npy' in r.stdout
    (tmp_path/'text.mp4').write_text('no video here')
    r = subprocess.run([sys.executable, '-m', 'nfp_nb.cli', 'prep', 'text.mp4', '--run', 'bad'],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and 'text.mp4' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr and no_cache_left(tmp_path/'bad')

def test_several_clips_in_one_run(tmp_path, capfd):
    "`nfp_prep a.mp4 b.mp4 --run DIR`: one cache, the cuts recorded, no pair (nor restorer chain) crosses a cut."
    a = write_sample(tmp_path/'a.mp4', n_frames=10, size=48, seed=1)
    b = write_sample(tmp_path/'b.mp4', n_frames=7, size=64, seed=2, height=36)
    prep_main([str(a), str(b), '--run', str(tmp_path/'run'), '--size', '32', '--quiet'])
    assert '17 frames in 2 clips, 32x32' in capfd.readouterr().out
    st = FrameStore.load(tmp_path/'run')
    assert st.clips == [(0, 10), (10, 17)]
    ds = PairDataset(st, skip=(1, 3))
    assert len(ds) == (10 - 3) + (7 - 3) and all((ds[i]['t'] < 10) == (ds[i]['t'] + ds[i]['k'] < 10) for i in range(len(ds)))
    from nfp_nb.restorer import RestorePairDataset
    rd = RestorePairDataset(st, torch.nn.Identity(), n=(1, 2), m=(1, 4), device='cpu')
    assert all((t < 10) == (t + 4 < 10) for t in rd.starts)
    check_cli(capfd, [str(a), str(b), '--size', '32', '--quiet'], '--run')              # several sources need a named run
    check_cli(capfd, [str(a), str(tmp_path/'missing.mp4'), '--run', str(tmp_path/'r2'), '--quiet'], 'missing.mp4')
    assert no_cache_left(tmp_path/'r2')

PEAK = """
import sys
from nfp_nb.data import FrameStore
FrameStore.prepare(sys.argv[1], run=sys.argv[2], size=int(sys.argv[3]), progress=False)
# VmHWM, the kernel's peak resident set of this process. resource.getrusage's ru_maxrss would not do: Linux carries
# it across fork and exec, so a child reports its parent's peak (here pytest's) whenever that is the larger.
print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')][0] / 1024)
"""

def gradient_clip(path, n, h=360, w=640):
    "`n` frames of colour gradients that move every frame, as H.264 (x264 through PyAV): each frame costs a real decode."
    y, x = np.mgrid[:h, :w]
    base = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)
    step = np.array([4, 3, 251], np.int64)                   # per frame: +4, +3, -5 levels, wrapping around
    return write_video(path, (base + ((t * step) % 256).astype(np.uint8) for t in range(n)), fps=30, crf=20)

def test_prepare_peak_memory_is_flat_in_clip_length(tmp_path):
    """A fresh process preparing 4x the frames peaks no higher than 1.1x: nothing is held per frame.
    The 720p version (150 and 600 frames) is bench/bench_data.py --rss-only; here 360x640 frames at size 352, so that
    anything kept per frame, an output frame (0.66 MB) or more, would show as 1.5x or more."""
    peak = {}
    for n in (100, 400):
        src = gradient_clip(tmp_path/f'grad{n}.mp4', n)
        r = subprocess.run([sys.executable, '-c', PEAK, str(src), str(tmp_path/f'run{n}'), '352'],
                           capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': str(ROOT)}, timeout=300)
        assert r.returncode == 0, r.stderr
        assert FrameStore.load(tmp_path/f'run{n}').frames.shape == (n, 352, 624, 3)
        peak[n] = float(r.stdout.split()[-1])
    assert peak[400] <= 1.1 * peak[100], f"peak {peak[100]:.0f} MiB for 100 frames, {peak[400]:.0f} MiB for 400"


# The edge cases of the examples in nbs/03_data.ipynb (the notebook keeps a short example of each).
from fastcore.test import test_eq, test_fail
test_eq.__test__ = test_fail.__test__ = False   # fastcore's checks: not tests for pytest to collect
from nfp_nb.core import to_float
from nfp_nb.data import target_geometry, check_size, int_range, flip_axes

def test_target_geometry_and_check_size():
    test_eq(target_geometry(720, 1280, 256, 'square'), ((0, 280, 720, 720), (256, 256)))
    test_eq(target_geometry(720, 1280, 256, 'none')[1], (256, 455))
    test_eq(target_geometry(720, 1280, 256, 'center')[1], (256, 448))
    test_eq(target_geometry(480, 640, 144, '16:9'), ((60, 0, 360, 640), (144, 256)))
    test_eq(target_geometry(100, 100, (32, 64), 'center')[0], (25, 0, 50, 100))
    test_fail(lambda: check_size(0), contains='positive'); test_fail(lambda: check_size(-3), contains='positive')
    test_fail(lambda: target_geometry(10, 10, 8, 'wide'), contains='crop must be one of')

def test_frame_store_files_reuse_and_rebuild(tmp_path):
    runs = tmp_path/'runs'
    store = FrameStore.prepare(run=runs/'run', size=32, max_frames=24, progress=False)
    test_eq((len(store), store.size, store.fps), (24, (32, 32), 30.0))
    test_eq(store.frames.dtype, np.uint8); test_eq(store[3].shape, (32, 32, 3))
    test_eq(sorted(p.name for p in (runs/'run'/'frames').iterdir()), ['frames.json', 'frames.npy'])
    stamp = store.meta['npy']
    test_eq(FrameStore.prepare(run=runs/'run', size=32, max_frames=24, progress=False).meta['npy'], stamp)   # reused
    test_eq(len(FrameStore.prepare(run=runs/'run', size=32, max_frames=12, progress=False)), 12)        # rebuilt
    store = FrameStore.load(runs/'run'); test_eq(len(store), 12)

def test_int_range_and_flip_axes():
    test_eq(int_range(3, 'n'), (3, 3)); test_eq(int_range(3, 'skip', upto=True), (1, 3))
    test_eq(int_range((0, 2), 'ahead', least=0), (0, 2)); test_eq(int_range(np.int64(2), 'm'), (2, 2))
    test_fail(lambda: int_range((3, 1), 'skip'), contains='skip=(3, 1): need 1 <= low <= high')
    test_eq([flip_axes(f) for f in (False, None, True, 'h', 'hv')], ['', '', 'h', 'h', 'hv'])
    test_fail(lambda: flip_axes('v'), contains="flip must be False, True, 'h' or 'hv'")

@pytest.fixture(scope='module')
def store12(tmp_path_factory):
    "The notebook's store: the sample video, 12 frames of 32 px."
    run = tmp_path_factory.mktemp('runs')/'run'
    FrameStore.prepare(run=run, size=32, max_frames=12, progress=False)
    return FrameStore.load(run)

def test_pair_dataset_items_draws_and_unroll(store12):
    store = store12
    ds = PairDataset(store, skip=(1, 3), crop=16, seed=0)
    test_eq(len(ds), 12 - 3)
    it = ds[2]
    test_eq(it['input'].shape, (3, 16, 16)); test_eq(it['input'].dtype, torch.float32)
    assert -1 <= it['input'].min() and it['target'].max() <= 1 and 1 <= it['k'] <= 3
    test_eq(PairDataset(store, skip=(1, 3), crop=16, seed=0)[2]['target'], it['target'])    # same seed, same pair
    ks = set()
    for e in range(10):
        ds.set_epoch(e); ks |= {ds.draw(i)['k'] for i in range(len(ds))}
    test_eq(ks, {1, 2, 3})                                                    # every skip in the range is drawn
    full = PairDataset(store, skip=2)
    test_eq(full[0]['target'], to_float(np.array(store[full[0]['k']])))   # the same values as `to_float`
    un = PairDataset(store, skip=(1, 3), crop=16, seed=0, unroll=2)
    test_eq(un[2]['target'], it['target'])                                  # unroll adds draws after the others: same pairs
    for i in range(len(un)):
        d = un.draw(i); assert 0 <= d['n'] <= 2 and i - d['n'] * d['k'] >= 0   # 'prev' is n steps of k before the input
    uf = PairDataset(store, skip=(1, 3), seed=0, unroll=2)[5]                 # whole frames
    test_eq(uf['prev'], to_float(np.array(store[5 - uf['n'] * uf['k']])))
    test_fail(lambda: PairDataset(store, skip=12), contains='fewer than K+1 = 13')
    test_fail(lambda: PairDataset(store, crop=64), contains='does not fit')
