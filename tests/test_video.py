"Round trips and broken inputs for `nfp_nb.video` (small clips only)."
import warnings
import numpy as np, pytest, torch, av
from PIL import Image
from nfp_nb.core import SourceError, ConfigError, CacheError
from nfp_nb.video import (probe_video, read_video, iter_video, write_video, VideoWriter, contact_sheet, list_images)
from nfp_nb.sample import sample_video

@pytest.fixture(scope='module')
def clip():
    "24 frames, 48×64: smooth colour gradients with a moving bright disc (H.264 keeps these closely)."
    t, y, x = np.meshgrid(np.arange(24), np.arange(48), np.arange(64), indexing='ij')
    disc = ((y - 24) ** 2 + (x - 8 - 2 * t) ** 2 < 64) * 120
    f = np.stack([x * 3 + disc, y * 4 + t * 2, 200 - x * 2 + disc // 2], -1)
    return np.clip(f, 0, 255).astype(np.uint8)

def test_round_trip(tmp_path, clip):
    "Write with PyAV, read back with decord: same count, close pixels."
    p = write_video(tmp_path/'rt.mp4', clip, fps=25)
    info = probe_video(p)
    assert (info.n_frames, info.height, info.width) == (24, 48, 64) and abs(info.fps - 25) < 0.01
    back = read_video(p)
    assert back.shape == clip.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - clip).mean() < 6

def test_streaming_chunks_torch_and_odd_size(tmp_path, clip):
    odd = clip[:, :47, :63]
    with VideoWriter(tmp_path/'odd.mp4', fps=12) as w:
        w.write(torch.from_numpy(odd[:5]))        # a torch chunk
        for f in odd[5:]: w.write(f)              # then single frames
    info = probe_video(tmp_path/'odd.mp4')
    assert (info.n_frames, info.height, info.width) == (24, 48, 64)   # padded to even
    back = read_video(tmp_path/'odd.mp4')[:, :47, :63]
    assert np.abs(back.astype(int) - odd).mean() < 6

def test_iter_video_bounded_chunks(tmp_path, clip):
    p = write_video(tmp_path/'c.mp4', clip)
    assert [len(c) for c in iter_video(p, chunk=10)] == [10, 10, 4]
    assert read_video(p, stride=5).shape[0] == 5
    assert read_video(p, start=20).shape[0] == 4

def test_writer_is_atomic(tmp_path, clip):
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path/'a.mp4') as w:
            w.write(clip[:4]); raise RuntimeError('boom')
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match='differs'):
        with VideoWriter(tmp_path/'b.mp4') as w: w.write(clip[:2]); w.write(clip[:2, :32])
    assert list(tmp_path.iterdir()) == []

def test_writer_unwritable(tmp_path, clip):
    (tmp_path/'file').write_text('x')
    with pytest.raises(CacheError, match='file'): write_video(tmp_path/'file'/'out.mp4', clip)

@pytest.mark.parametrize('kind', ['missing', 'text', 'empty', 'trunc_front', 'trunc_tail'])
def test_bad_files(tmp_path, clip, kind):
    p = tmp_path/f'{kind}.mp4'
    if kind == 'text': p.write_text('hello, not a video\n')
    elif kind == 'empty': p.touch()
    elif kind == 'trunc_front':     # index at the front (our writer's faststart): opens, fails mid-decode
        data = write_video(tmp_path/'full.mp4', np.repeat(clip, 4, 0)).read_bytes(); p.write_bytes(data[:len(data)//2])
    elif kind == 'trunc_tail':      # index at the end (plain mp4): cutting it loses the index
        with av.open(str(tmp_path/'plain.mp4'), 'w') as c:
            s = c.add_stream('libx264', rate=24); s.width, s.height, s.pix_fmt = 64, 48, 'yuv420p'
            for f in np.repeat(clip, 4, 0):
                for pkt in s.encode(av.VideoFrame.from_ndarray(f, format='rgb24')): c.mux(pkt)
            for pkt in s.encode(): c.mux(pkt)
        data = (tmp_path/'plain.mp4').read_bytes(); p.write_bytes(data[:len(data)//2])
    with pytest.raises(SourceError, match=f'{kind}.mp4'):
        probe_video(p); read_video(p)

def test_image_folder(tmp_path, clip):
    d = tmp_path/'imgs'; d.mkdir()
    Image.fromarray(clip[0]).save(d/'f1.png')
    Image.fromarray(clip[1]).convert('L').save(d/'f2.jpg')
    Image.fromarray(clip[2]).convert('RGBA').save(d/'f10.webp')
    Image.fromarray(clip[3]).resize((30, 20)).save(d/'f3.bmp')
    (d/'notes.txt').write_text('ignored')
    assert [p.name for p in list_images(d)] == ['f1.png', 'f2.jpg', 'f3.bmp', 'f10.webp']
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        fr = read_video(d)
    assert fr.shape == (4, 48, 64, 3) and any('resized' in str(x.message) for x in w)
    assert np.array_equal(fr[0], clip[0])
    assert probe_video(d).n_frames == 4 and probe_video(d).kind == 'images'
    (d/'f11.png').write_bytes(b'\x89PNG broken')
    with pytest.raises(SourceError, match='f11.png'): read_video(d)

def test_empty_folder(tmp_path):
    with pytest.raises(SourceError, match='holds no images'): probe_video(tmp_path)

def test_contact_sheet(clip):
    im = contact_sheet(clip[:6], ncols=3, labels=list('abcdef'))
    assert im.size == (3*64 + 4, 2*48 + 2)
    assert contact_sheet(list(clip[:5]), width=300).size[0] <= 300

def test_pyav_reads_what_decord_reads(tmp_path, monkeypatch):
    "PyAV decodes every file and probes where decord is missing: it agrees with decord on count, fps, size, pixels, errors."
    decord = pytest.importorskip('decord', reason='decord has no wheel here: nothing to compare PyAV with')
    from nfp_nb.sample import write_sample
    from nfp_nb.video import use_decord
    src = write_sample(tmp_path/'s.mp4', n_frames=12, size=64, height=48, seed=3, fps=24)   # decord fails on 48x48
    vr = decord.VideoReader(str(src), ctx=decord.cpu(0))
    ref = vr.get_batch(list(range(0, 12, 2))).asnumpy()               # decord's own decode
    monkeypatch.delenv('NFP_VIDEO_BACKEND', raising=False)
    assert use_decord()
    a = probe_video(src)                                              # decord probes
    monkeypatch.setenv('NFP_VIDEO_BACKEND', 'pyav')
    assert not use_decord()
    b = probe_video(src)                                              # PyAV probes
    assert (a.n_frames, a.fps, a.width, a.height) == (b.n_frames, b.fps, b.width, b.height) == (len(vr), vr.get_avg_fps(), 64, 48)
    frames = read_video(src, stride=2)
    assert frames.shape == ref.shape == (6, 48, 64, 3) and np.abs(frames.astype(int) - ref).mean() < 1
    bad = tmp_path/'cut.mp4'; bad.write_bytes(src.read_bytes()[:600])
    with pytest.raises(SourceError, match='cut.mp4'): read_video(bad)   # PyAV probing
    monkeypatch.delenv('NFP_VIDEO_BACKEND')
    with pytest.raises(SourceError, match='cut.mp4'): read_video(bad)   # decord probing
