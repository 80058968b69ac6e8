"Drift metrics: constructed collapses must score clearly worse than texture-keeping rollouts."
import numpy as np, pytest, torch
import matplotlib
matplotlib.use('Agg')
from nfp_nb.core import ConfigError
from nfp_nb.metrics import SourceStats, DriftMeter, drift_metrics, summarize_drift, plot_drift, texture_grams
from nfp_nb.sample import sample_video

pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.py

@pytest.fixture(scope='module')
def src(): return sample_video(n_frames=32, size=48, seed=0)

@pytest.fixture(scope='module')
def stats(src): return SourceStats.from_source(src)

def _to_grey(src, T=24):
    "A rollout that fades from the first source frame into flat grey."
    w = np.linspace(0, 1, T)[:, None, None, None]
    return ((1 - w) * src[:1] + w * 128).round().astype(np.uint8)

def _texture_keeping(src, T=24, seed=0):
    "A rollout that wanders through the source's frames, jittered by a pixel and noisy: texture kept, not a copy."
    rng = np.random.default_rng(seed)
    out = [np.roll(src[(3 * t) % len(src)], (t % 2, (t // 2) % 2), (0, 1)) for t in range(T)]
    out = np.stack(out).astype(np.int16) + rng.integers(-4, 5, (T, *src.shape[1:]))
    return out.clip(0, 255).astype(np.uint8)

def test_grey_collapse_scores_worse(src, stats):
    good, grey = drift_metrics(_texture_keeping(src), stats), drift_metrics(_to_grey(src), stats)
    g, b = summarize_drift(good), summarize_drift(grey)
    assert b['texture'] > 0.9 and g['texture'] < 0.5 * b['texture']
    assert b['sharpness'] < 0.1 and 0.5 < g['sharpness'] < 2
    assert b['colour'] > 2 * g['colour']
    assert b['nearest'] > 2 * g['nearest']
    assert grey['texture'][-1] > 0.98 and grey['sharpness'][-1] < 1e-3          # fully flat at the end
    assert np.all(np.diff(grey['texture'][1:]) > -0.02)                           # rises as it fades

def test_frozen_has_no_motion(src, stats):
    frozen = drift_metrics(np.repeat(src[7:8], 20, 0), stats)
    moving = drift_metrics(src, stats)
    assert np.isnan(frozen['motion'][0])
    assert np.nanmax(frozen['motion']) < 1e-6
    assert 0.7 < np.nanmedian(moving['motion']) < 1.3
    assert summarize_drift(frozen)['motion'] == 0.0

def test_source_scores_as_itself(src, stats):
    m = drift_metrics(src, stats)
    assert np.nanmax(m['nearest']) < 1e-6 and list(m['nearest_idx'][:4]) == [0, 1, 2, 3]
    assert set(m) == set(DriftMeter.keys) | {'nearest_idx'}
    assert all(len(v) == len(src) for v in m.values())

def test_chunks_sizes_and_sources(src, stats):
    one = drift_metrics(src[:10], stats)
    chunked = drift_metrics((src[i:min(i + 3, 10)] for i in range(0, 10, 3)), stats)
    for k in DriftMeter.keys: np.testing.assert_allclose(one[k], chunked[k], rtol=1e-5, atol=1e-6)
    big = np.repeat(np.repeat(src[:4], 2, 1), 2, 2)                            # 96 px: resized to the source's 48
    assert len(drift_metrics(big, stats)['texture']) == 4
    class Store: frames = src                                                  # FrameStore-like
    s2 = SourceStats.from_source(Store(), max_frames=8)
    assert len(s2.thumbs) == 8 and s2.size == (48, 48)
    assert len(drift_metrics(torch.from_numpy(src[:2]), s2)['colour']) == 2   # torch frames too

def test_bad_input(stats):
    with pytest.raises(ConfigError, match='expected uint8 frames'): drift_metrics(np.zeros((2, 8, 8)), stats)
    with pytest.raises(ConfigError, match='source must be'): SourceStats.from_source(np.zeros((4, 4)))

def test_grams_flat_is_zero():
    assert texture_grams(torch.full((1, 3, 16, 16), 0.3)).abs().max() < 1e-8

def test_plot_drift(src, stats, tmp_path):
    res = {'A': drift_metrics(_to_grey(src), stats), 'A+B': drift_metrics(_texture_keeping(src), stats)}
    fig = plot_drift(res, title='t', smooth=3)
    assert len(fig.axes) == 6 and len(fig.axes[0].lines) == 3                 # two rollouts + the reference line
    fig.savefig(tmp_path / 'd.png'); assert (tmp_path / 'd.png').stat().st_size > 1000
    assert len(plot_drift(res['A']).axes[0].lines) == 2                        # a single metrics dict works too
