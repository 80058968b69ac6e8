"""A preset's settings reach the Trainer by every path that trains: `nfp_train --net A`, `nfp_train --net B` and
`train_restorer`, for each shipped preset and for one that changes every field of `TrainConfig`."""
import dataclasses
import pytest, torch
import nfp_nb.models as models
from nfp_nb.models import Preset, get_preset, GeneratorConfig, DiscriminatorConfig
from nfp_nb.data import FrameStore
from nfp_nb.train import Trainer, TrainConfig
from nfp_nb.restorer import train_restorer
from nfp_nb.cli import run_training

pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.py

# every TrainConfig field away from its default (vgg_weights needs a VGG19 file: it keeps its default, None)
EVERY = dict(epochs=3, steps=7, batch_size=3, lr=1e-3, betas=(0.4, 0.9), decay_unit='step', decay_start=2, gan_mode='hinge',
             lambda_feat=5.0, lambda_l1=1.0, lambda_keep=4.0, keep_pool=4, lambda_tex=2.0, tex_channels=8, lambda_vgg=3.0, amp='off', channels_last=False,
             compile=True, ema=0.5, save_every=2, save_every_steps=3, keep=4, sample_every=5, n_samples=2, seed=7,
             deterministic=True, num_workers=1, niter_fix_global=1, log_every=9, pushforward=0.5, unroll=2, input_noise=0.1)

def _every():
    return Preset('every', GeneratorConfig(ngf=4, n_downsampling=1, n_blocks=1, residual=True),
                  DiscriminatorConfig(ndf=4, n_layers=1, num_D=1), train=EVERY, skip=(1, 2), description='all fields changed')

def test_every_field_is_changed():
    defaults = TrainConfig()
    same = [f.name for f in dataclasses.fields(TrainConfig) if f.name != 'vgg_weights' and getattr(defaults, f.name) == EVERY.get(f.name)]
    assert same == [] and set(EVERY) == {f.name for f in dataclasses.fields(TrainConfig)} - {'vgg_weights'}, same

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A run with frames and a tiny A (B's default predictor)."
    run = tmp_path_factory.mktemp('presets') / 'run'
    FrameStore.prepare(run=run, size=32, max_frames=16, progress=False)
    run_training([str(run), '--preset', 'tiny', '--steps', '1', '--sample-every', '100', '--quiet', '--device', 'cpu'])
    return run

@pytest.mark.parametrize('name', [*models._PRESETS, 'every'])
def test_preset_reaches_the_trainer(run, name, monkeypatch):
    monkeypatch.setattr(Trainer, 'fit', lambda self, *a, **k: self)      # built as for training; no step taken
    monkeypatch.setitem(models._PRESETS, 'every', _every)
    det = torch.are_deterministic_algorithms_enabled()
    p = get_preset(name)
    want = TrainConfig(**p.train)                                         # the preset's settings over TrainConfig's defaults
    B = ['--n-range', '1', '2', '--ahead', '0', '1', '--no-prerender']
    paths = {'nfp_train --net A': lambda: run_training([str(run), '--preset', name, '--quiet', '--device', 'cpu']),
             'nfp_train --net B': lambda: run_training([str(run), '--net', 'B', '--preset', name, '--quiet', '--device', 'cpu',
                                                        '--no-choose-loop', *B]),
             'train_restorer': lambda: train_restorer(run, preset=name, n=(1, 2), ahead=(0, 1), prerender=False, quiet=True,
                                                      device='cpu')}
    try:
        for how, make in paths.items():
            tr = make()
            assert tr.cfg == want, (how, {f.name: (getattr(tr.cfg, f.name), getattr(want, f.name))
                                          for f in dataclasses.fields(TrainConfig) if getattr(tr.cfg, f.name) != getattr(want, f.name)})
            assert (tr.G.cfg, tr.D.cfg, tr.meta['preset']) == (p.generator, p.discriminator, name), how
            if how.endswith('A'): assert tr.dataset.skip == tuple(p.skip) and tr.meta['skip'] == list(p.skip)
            del tr
    finally: torch.use_deterministic_algorithms(det)
