"""The restorer B: its dataset (online and prerendered), training it with the standard Trainer, the
`nfp_train --net B` path, and the evidence that B pulls A's drifted frames back towards the real future.

Everything runs on the CPU at 32 px with the `tiny` preset. Torch gets one thread here: on a machine whose
two cores are shared with other jobs, two OpenMP threads per process made these steps up to 20× slower.
"""
import json, os, subprocess, sys, dataclasses
from pathlib import Path
import numpy as np
import pytest
import torch

from nfp_nb.core import CheckpointError, ConfigError, to_float
from nfp_nb.data import FrameStore, PairDataset
from nfp_nb.models import get_preset, build_generator, build_discriminator
from nfp_nb.checkpoint import load_checkpoint, checkpoint_fingerprint
from nfp_nb.train import Trainer, TrainConfig
from nfp_nb.cli import train_main
from nfp_nb.restorer import (RestorePairDataset, apply_predictor, load_predictor, train_restorer,
                             evaluate_restorer, module_fingerprint)

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.py

# --- the evidence ------------------------------------------------------------------------------------------
# A and B are trained on the first TRAIN frames of the sample clip; the start frames for the comparison are
# taken from the frames after them, which neither network saw (not as inputs, not as targets).
SIZE, TRAIN, ALL, M = 32, 150, 240, 10

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Train A, then B against it (short runs), on the first TRAIN frames of the sample clip.

    Both use pix2pix's L1 term (weight 100) besides the GAN and feature-matching losses: in ~100 steps the
    adversarial loss alone does not get a tiny network anywhere near the frames. A is the plain tiny generator and
    drifts quickly when fed its own output, the situation B exists for; B is the tiny generator in residual mode
    (it starts as the identity, so its short training only has to learn the correction) with random flips.
    """
    root = tmp_path_factory.mktemp('restorer')
    train = FrameStore.prepare(None, run=root/'train', size=SIZE, max_frames=TRAIN, progress=False)
    full = FrameStore.prepare(None, run=root/'full', size=SIZE, max_frames=ALL, progress=False)
    pa, pb = get_preset('tiny'), get_preset('tiny')
    pb.generator = dataclasses.replace(pb.generator, residual=True)
    cfg = dict(batch_size=8, save_every=0, sample_every=0, seed=0, lambda_l1=100.0)
    Trainer(build_generator(pa.generator), build_discriminator(pa.discriminator), PairDataset(train, skip=(1, 1)),
            TrainConfig(steps=100, lr=1e-3, **cfg), root/'train', 'A', device='cpu').fit()
    tb = train_restorer(root/'train', preset=pb, n=(1, 10), m=(1, M), prerender=True, steps=160, lr=5e-4, device='cpu',
                        dataset_kwargs={'flip': 'hv', 'progress': False}, **cfg)
    return root, train, full, tb

def test_b_checkpoint_names_its_predictor(trained):
    root, _, _, tb = trained
    meta = load_checkpoint(tb.last_checkpoint).meta
    a = meta['predictor']
    assert Path(a['path']).parent == root/'train'/'A' and a['fingerprint'] == checkpoint_fingerprint(root/'train'/'A'/'latest')
    assert meta['n'] == [1, 10] and meta['m'] == [1, M] and meta['inputs'] == 'prerender'
    assert meta['dataset']['type'] == 'RestorePairDataset'

def test_b_restores_held_back_frames(trained):
    """On held-back start frames, B(A^n(x)) is nearer the real frames t+1..t+M than A^n(x), by mean L1 over m."""
    root, _, full, _ = trained
    starts = np.arange(TRAIN, ALL - M)
    res = evaluate_restorer(full, root/'train'/'A'/'latest', root/'train'/'B'/'latest', starts, ns=(1, 5, 10), m=M)
    print({n: {k: round(v, 4) for k, v in r.items()} for n, r in res.items()})
    for n in (5, 10): assert res[n]['B'] < res[n]['A'], (n, res[n])

# --- the command line --------------------------------------------------------------------------------------
def test_cli_trains_b_against_a(trained, tmp_path, capsys):
    root, _, _, _ = trained
    FrameStore.prepare(None, run=tmp_path, size=SIZE, max_frames=24, progress=False)
    a = root/'train'/'A'/'latest'
    tr = train_main(['--run', str(tmp_path), '--net', 'B', '--preset', 'tiny', '--steps', '2', '--batch-size', '2',
                     '--predictor', str(a), '--n', '1', '3', '--m', '1', '3', '--prerender', '--device', 'cpu'])
    meta = load_checkpoint(tmp_path/'B'/'latest').meta
    assert meta['predictor']['fingerprint'] == checkpoint_fingerprint(a) and meta['n'] == [1, 3] and meta['m'] == [1, 3]
    assert meta['init'] == 'predictor'            # B has A's preset: it started as a copy of A (--init auto)
    assert meta['train']['lambda_tex'] == TrainConfig(**get_preset('tiny').train).lambda_tex > 0
    side = json.loads((tmp_path/'B'/'prerender'/'inputs.json').read_text())
    assert side['n_max'] == 3 and side['size'] == [SIZE, SIZE]

def test_cli_init_choices(trained, tmp_path):
    """--init random keeps B's fresh weights; --init predictor with another preset than A's is one clear error."""
    root, _, _, _ = trained
    FrameStore.prepare(None, run=tmp_path, size=SIZE, max_frames=24, progress=False)
    a = root/'train'/'A'/'latest'
    common = ['--run', str(tmp_path), '--net', 'B', '--steps', '1', '--predictor', str(a), '--n', '1', '2', '--m', '1', '2',
              '--device', 'cpu', '--quiet', '--lambda-tex', '0']
    train_main(common + ['--preset', 'tiny', '--init', 'random'])
    meta = load_checkpoint(tmp_path/'B'/'latest').meta
    assert meta['init'] == 'random' and meta['train']['lambda_tex'] == 0
    r = subprocess.run([sys.executable, '-c', 'from nfp_nb.cli import train_main; train_main()', *common,
                        '--preset', 'small', '--init', 'predictor'], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "not A's architecture" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr

def test_cli_missing_predictor_is_one_line_exit_2(tmp_path):
    FrameStore.prepare(None, run=tmp_path, size=SIZE, max_frames=24, progress=False)
    r = subprocess.run([sys.executable, '-c', 'from nfp_nb.cli import train_main; train_main()', '--run', str(tmp_path),
                        '--net', 'B', '--preset', 'tiny', '--steps', '1', '--device', 'cpu'],
                       capture_output=True, text=True, timeout=120, cwd=ROOT, env=os.environ | {'OMP_NUM_THREADS': '1'})
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'predictor' in lines[0] and str(tmp_path/'A') in lines[0], r.stderr

def test_incompatible_predictor_checkpoint(tmp_path):
    from nfp_nb.checkpoint import save_checkpoint
    from nfp_nb.models import GeneratorConfig
    g = build_generator(GeneratorConfig(input_nc=4, output_nc=3, ngf=4, n_downsampling=1, n_blocks=1))
    save_checkpoint(tmp_path/'A'/'ep0001', g)
    with pytest.raises(CheckpointError, match='3 → 3 channels'): load_predictor(tmp_path/'A'/'ep0001')

# --- the dataset -------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def small(tmp_path_factory):
    run = tmp_path_factory.mktemp('small')
    store = FrameStore.prepare(None, run=run, size=SIZE, max_frames=20, progress=False)
    torch.manual_seed(0)
    return store, build_generator(get_preset('tiny').generator)

def test_batched_chain_equals_item_by_item(small):
    store, A = small
    x = to_float(np.array(store.frames[:6]))
    n = torch.tensor([3, 1, 2, 3, 1, 2])
    together = apply_predictor(A, x, n, batch_size=4)
    alone = torch.cat([apply_predictor(A, x[i:i+1], int(n[i])) for i in range(6)])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=0)   # batch size changes float rounding only

def test_draws_repeat_under_a_seed_and_follow_the_epoch(small):
    store, A = small
    a = RestorePairDataset(store, A, n=(1, 3), m=(1, 3), seed=7)
    b = RestorePairDataset(store, A, n=(1, 3), m=(1, 3), seed=7)
    b.set_epoch(3); b.load_state_dict(a.state_dict())
    assert (a.draw_n == b.draw_n).all() and (a.draw_m == b.draw_m).all()
    ia, ib = a.__getitems__([0, 4, 9]), b.__getitems__([0, 4, 9])
    for u, v in zip(ia, ib): torch.testing.assert_close(u['input'], v['input']); assert u['k'] == v['k'] and u['n'] == v['n']
    a.set_epoch(1)
    assert not ((a.draw_n == b.draw_n).all() and (a.draw_m == b.draw_m).all())

def test_prerender_cache_is_atomic_reused_and_rebuilt(small, tmp_path):
    store, A = small
    ds = RestorePairDataset(store, A, n=(1, 3), m=(1, 2), mode='prerender', cache_dir=tmp_path, progress=False)
    assert ds.last_render['frames'] == 3 * len(store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['inputs.json', 'inputs.npy']     # no temporary left
    mtime = (tmp_path/'inputs.npy').stat().st_mtime_ns
    again = RestorePairDataset(store, A, n=(1, 2), m=(1, 2), mode='prerender', cache_dir=tmp_path, progress=False)
    assert again.last_render is None and (tmp_path/'inputs.npy').stat().st_mtime_ns == mtime
    (tmp_path/'inputs.json').unlink()                       # e.g. killed between the rename and the sidecar
    third = RestorePairDataset(store, A, n=(1, 2), m=(1, 2), mode='prerender', cache_dir=tmp_path, progress=False)
    assert third.last_render is not None
    A2 = build_generator(get_preset('tiny').generator)       # another A: the cache is rebuilt for it
    fourth = RestorePairDataset(store, A2, n=(1, 2), m=(1, 2), mode='prerender', cache_dir=tmp_path, progress=False)
    assert fourth.last_render is not None
    assert json.loads((tmp_path/'inputs.json').read_text())['predictor_weights'] == module_fingerprint(A2)

def test_interrupted_render_keeps_the_old_cache(small, tmp_path, monkeypatch):
    store, A = small
    RestorePairDataset(store, A, n=(1, 2), m=(1, 2), mode='prerender', cache_dir=tmp_path, progress=False)
    before = (tmp_path/'inputs.json').read_text()
    import nfp_nb.restorer as R
    def boom(*a, **k): raise KeyboardInterrupt
    monkeypatch.setattr(R, 'apply_predictor', boom)
    with pytest.raises(KeyboardInterrupt):
        RestorePairDataset(store, A, n=(1, 3), m=(1, 2), mode='prerender', cache_dir=tmp_path, progress=False)
    assert (tmp_path/'inputs.json').read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['inputs.json', 'inputs.npy']

def test_refresh_follows_a_newer_predictor_checkpoint(small, tmp_path):
    from nfp_nb.checkpoint import save_checkpoint
    store, A = small
    save_checkpoint(tmp_path/'A'/'ep0001', A)
    ds = RestorePairDataset(store, tmp_path/'A'/'latest', n=(1, 2), m=(1, 2), mode='prerender', refresh_every=2,
                            cache_dir=tmp_path/'cache', progress=False)
    first = ds.predictor_info['fingerprint']
    A2 = build_generator(get_preset('tiny').generator)
    save_checkpoint(tmp_path/'A'/'ep0002', A2)
    ds.set_epoch(1); assert ds.predictor_info['fingerprint'] == first       # not a refresh epoch
    ds.last_render = None
    ds.set_epoch(2)
    assert ds.predictor_info['fingerprint'] != first and ds.predictor_info['path'].endswith('ep0002')
    assert ds.last_render is not None

def test_bad_arguments(small):
    store, A = small
    with pytest.raises(ConfigError, match='mode'): RestorePairDataset(store, A, mode='offline')
    with pytest.raises(ConfigError, match='too few'): RestorePairDataset(store, A, m=(1, 20))
    with pytest.raises(ConfigError, match='no target'): RestorePairDataset(store, A, m=(1, 3), starts=[18])


# --- the edge cases of the examples in nbs/08_restorer.ipynb (the notebook keeps a short example of each) ---
from fastcore.test import test_eq, test_ne, test_fail
test_eq.__test__ = test_ne.__test__ = test_fail.__test__ = False   # fastcore's checks: not tests for pytest to collect
from nfp_nb.restorer import init_from_predictor, inputs_mode, prerender_pays, planned_steps

def test_restore_pair_dataset_example_checks(tmp_path):
    store = FrameStore.prepare(None, run=tmp_path/'run', size=32, max_frames=24, progress=False)
    A = build_generator(get_preset('tiny').generator)
    ds = RestorePairDataset(store, A, n=(1, 4), m=(1, 3))
    test_eq(len(ds), 24 - 3)
    item = ds[5]
    test_eq(item['input'].shape, (3, 32, 32)); test_eq(item['t'], 5)
    test_eq(item['target'], to_float(np.array(store.frames[5 + item['k']])))
    calls = []
    h = A.register_forward_hook(lambda mod, inp, out: calls.append(len(inp[0])))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)))
    h.remove()
    test_eq(batch['input'].shape, (8, 3, 32, 32)); test_eq(len(calls), int(batch['n'].max()))
    draws = ds.draw_n.copy(); ds.set_epoch(1); test_ne(ds.draw_n, draws); ds.set_epoch(0); test_eq(ds.draw_n, draws)
    test_fail(lambda: RestorePairDataset(store, A, m=(1, 30)), contains='too few for targets')
    test_fail(lambda: RestorePairDataset(store, A, n=(0, 3)), contains='need 1 <= low <= high')

def test_init_from_predictor_choices():
    _A = build_generator(get_preset('tiny').generator)
    _B = build_generator(get_preset('tiny').generator)
    test_eq(init_from_predictor(_B, _A), 'predictor')
    assert all(torch.equal(_A.state_dict()[k], v) for k, v in _B.state_dict().items())
    _C = build_generator(get_preset('small').generator)
    test_eq(init_from_predictor(_C, _A, 'auto'), 'random')          # another architecture: left as it was
    test_fail(lambda: init_from_predictor(_C, _A, 'predictor'), contains="not A's architecture")
    test_eq(init_from_predictor(build_generator(get_preset('tiny').generator), _A, 'random'), 'random')
    _R = build_generator(dataclasses.replace(get_preset('tiny').generator, residual=True))
    test_eq(init_from_predictor(_R, _A), 'random')                   # same tensors, but a residual B means something else
    test_fail(lambda: init_from_predictor(_R, _A, 'predictor'), contains='residual')
    _D = build_generator(get_preset('tiny').generator)
    test_eq(init_from_predictor(_D, _B, init_from_predictor(_D, _A, 'random') and _B), 'given')   # go on from a B trained before
    assert all(torch.equal(_B.state_dict()[k], v) for k, v in _D.state_dict().items())
    test_fail(lambda: init_from_predictor(_C, _A, _B), contains="not B's architecture")

def test_inputs_mode_prerender_pays_and_disk_guard():
    test_eq(inputs_mode(False, 0, 'cpu'), ('online', None))
    test_eq(inputs_mode(None, 4, 'cpu')[0], 'online')                      # CPU workers may run A themselves
    mode, note = inputs_mode(None, 4, 'cuda')                               # the documented GPU line: pre-rendered, and said so
    assert mode == 'prerender' and '--workers 4' in note
    test_eq(inputs_mode(True, 4, 'cuda'), ('prerender', None))
    # the default: pre-render when one pass over the frames costs fewer A forwards than the training run would make
    test_eq(prerender_pays((1, 10), frames=160, steps=600, batch_size=1), True)    # the demo's B: 1600 vs 3300 forwards
    test_eq(prerender_pays((1, 10), frames=160, steps=200, batch_size=1), False)   # 1600 vs 1100
    mode, note = inputs_mode(None, 0, 'cpu', n=(1, 10), frames=160, steps=600, cache_bytes=10**8, free_bytes=10**10)
    assert mode == 'prerender' and '1600 forwards' in note and '--no-prerender' in note
    mode, note = inputs_mode(None, 0, 'cpu', n=(1, 10), frames=160, steps=600, cache_bytes=6 * 10**9, free_bytes=10**10)
    assert mode == 'online' and 'more than half' in note                    # the disk guard
    test_eq(inputs_mode(False, 0, 'cpu', n=(1, 10), frames=160, steps=600), ('online', None))   # --no-prerender wins
    test_eq(planned_steps(TrainConfig(epochs=3, batch_size=4), 10), 9)
