"Tests for nfp_nb.losses: GAN losses, feature matching weighting, L1, VGG perceptual loss from local weights."
import importlib.util
import pytest, torch
from nfp_nb.core import ConfigError
from nfp_nb.models import MultiscaleDiscriminator
from nfp_nb.losses import *
from nfp_nb.losses import vgg19_features, load_vgg19_features, default_vgg_path, vgg_available

def _scales(v, n=2): return [[torch.randn(1, 4, 4, 4), torch.full((1, 1, 4, 4), float(v))] for _ in range(n)]

@pytest.mark.parametrize('mode,real,fake,d_real,d_fake', [
    ('lsgan', 1.0, 0.0, 0.0, 0.0), ('lsgan', 0.0, 1.0, 2.0, 2.0),
    ('hinge', 1.0, -1.0, 0.0, 0.0), ('hinge', 0.0, 0.0, 2.0, 2.0)])
def test_gan_loss_values(mode, real, fake, d_real, d_fake):
    l = GANLoss(mode)
    assert l(_scales(real), True).item() == pytest.approx(d_real)
    assert l(_scales(fake), False).item() == pytest.approx(d_fake)

def test_gan_loss_generator_forms():
    x = _scales(0.5)
    assert GANLoss('hinge')(x, True, for_discriminator=False).item() == pytest.approx(-1.0)
    assert GANLoss('lsgan')(x, True, for_discriminator=False).item() == pytest.approx(2 * 0.25)
    bce = GANLoss('bce')(x, True, for_discriminator=False).item()
    assert bce == pytest.approx(2 * torch.nn.functional.softplus(torch.tensor(-0.5)).item(), rel=1e-5)
    with pytest.raises(ConfigError): GANLoss('hinge')(x, False, for_discriminator=False)
    with pytest.raises(ConfigError, match='lsgan'): GANLoss('wgan-gp')

def test_gan_loss_input_forms():
    t = torch.zeros(1, 1, 3, 3)
    assert GANLoss()(t, False).item() == 0 and GANLoss()([t, t], True).item() == 2
    assert GANLoss()(t.bfloat16(), True).dtype == torch.float32

def test_gan_loss_on_discriminator_gradients():
    d = MultiscaleDiscriminator(6, 4, 2, 2)
    l = GANLoss()(d(torch.randn(1, 6, 32, 32)), True)
    l.backward()
    assert all(p.grad is not None for p in d.parameters())

def test_feature_matching_weighting():
    real = [[torch.zeros(1, 2, 3, 3) for _ in range(5)] for _ in range(3)]   # 3 scales, n_layers=3
    fake = [[torch.ones(1, 2, 3, 3) for _ in range(4)] + [torch.full((1, 2, 3, 3), 100.)] for _ in range(3)]
    # per scale: 4 features × 4/4 × 1/3; 3 scales → 4; × lambda 10; logits (100) excluded
    assert feature_matching_loss(fake, real).item() == pytest.approx(40.0)
    assert feature_matching_loss(fake, real, weight=1.0).item() == pytest.approx(4.0)
    real2 = [[torch.zeros(1, 2, 3, 3) for _ in range(4)] for _ in range(2)]   # 2 scales, n_layers=2
    fake2 = [[torch.full((1, 2, 3, 3), 2.) for _ in range(4)] for _ in range(2)]
    assert feature_matching_loss(fake2, real2).item() == pytest.approx(2 * 3 * (4 / 3) * 0.5 * 2 * 10)

def test_feature_matching_detaches_real():
    d = MultiscaleDiscriminator(6, 4, 2, 2)
    r, f = d(torch.randn(1, 6, 32, 32)), d(torch.randn(1, 6, 32, 32))
    rr = [[t.detach().requires_grad_() for t in s] for s in r]
    feature_matching_loss(f, rr).backward()
    assert all(t.grad is None for s in rr for t in s)

def test_l1():
    assert l1_loss(torch.zeros(2, 3), torch.full((2, 3), 0.5), weight=4).item() == pytest.approx(2.0)

def test_vgg_missing_weights_clear_error(tmp_path):
    p = tmp_path / 'nowhere' / 'vgg19.pth'
    with pytest.raises(ConfigError, match='VGG19 weights not found') as e: VGGLoss(weights=p)
    assert str(p) in str(e.value) and 'nothing is downloaded' in str(e.value)
    assert not vgg_available(p)

def test_vgg_default_path_is_torchvision_cache(monkeypatch, tmp_path):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    assert default_vgg_path() == tmp_path / 'hub' / 'checkpoints' / 'vgg19-dcbb9e9d.pth'
    with pytest.raises(ConfigError, match='vgg19-dcbb9e9d.pth'): VGGLoss()
    (tmp_path / 'hub' / 'checkpoints').mkdir(parents=True)
    full = {f'features.{k}': v for k, v in vgg19_features().state_dict().items()}
    full['classifier.0.weight'] = torch.zeros(2, 2)          # torchvision files hold the classifier too
    torch.save(full, default_vgg_path())
    assert vgg_available() and isinstance(VGGLoss(), VGGLoss)

@pytest.fixture(scope='module')
def vgg_file(tmp_path_factory):
    "A VGG19-shaped state dict with random weights, saved like torchvision's (via torchvision if it imports)."
    p = tmp_path_factory.mktemp('vgg') / 'vgg19.pth'
    if importlib.util.find_spec('torchvision') is not None:
        try:
            import torchvision
            torch.save(torchvision.models.vgg19(weights=None).state_dict(), p)
            return p
        except Exception: pass
    torch.save({f'features.{k}': v for k, v in vgg19_features().state_dict().items()}, p)
    return p

def test_vgg_loss_works_with_local_weights(vgg_file):
    vgg = VGGLoss(weights=vgg_file)
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    b = (a + 0.3 * torch.randn_like(a)).clamp(-1, 1).requires_grad_()
    assert vgg(a, a).item() == 0
    l = vgg(b, a); l.backward()
    assert l.item() > 0 and b.grad is not None and b.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train(); assert not vgg.training
    sd = torch.load(vgg_file, weights_only=True)
    assert torch.equal(vgg.slices[0][0].weight, sd['features.0.weight'])
    assert torch.equal(vgg.slices[4][-2].weight, sd['features.28.weight'])   # conv5_1
    assert VGGLoss(weights=vgg_file, normalize=False)(b, a).item() != l.item()

def test_vgg_safetensors_and_bad_files(tmp_path, vgg_file):
    from safetensors.torch import save_file
    sd = {k: v.contiguous() for k, v in torch.load(vgg_file, weights_only=True).items()}
    save_file(sd, str(tmp_path / 'vgg19.safetensors'))
    assert isinstance(load_vgg19_features(tmp_path / 'vgg19.safetensors'), torch.nn.Sequential)
    (tmp_path / 'junk.pth').write_bytes(b'not a torch file')
    with pytest.raises(ConfigError, match='cannot read VGG19 weights'): VGGLoss(tmp_path / 'junk.pth')
    bad = dict(sd); bad['features.28.weight'] = torch.zeros(3, 3, 3, 3)
    torch.save(bad, tmp_path / 'bad.pth')
    with pytest.raises(ConfigError, match=r'features\.28\.weight has shape'): VGGLoss(tmp_path / 'bad.pth')
    torch.save({'features.0.weight': torch.zeros(64, 3, 3, 3)}, tmp_path / 'partial.pth')
    with pytest.raises(ConfigError, match='missing features.0.bias'): VGGLoss(tmp_path / 'partial.pth')

def test_vgg_refuses_pickles(tmp_path):
    class Evil:
        def __reduce__(self): return (exec, ("open('%s', 'w').write('pwned')" % (tmp_path / 'pwned'),))
    torch.save({'x': Evil()}, tmp_path / 'evil.pth')
    with pytest.raises(ConfigError, match='cannot read'): VGGLoss(tmp_path / 'evil.pth')
    assert not (tmp_path / 'pwned').exists()

def test_no_torchvision_needed(monkeypatch, vgg_file):
    import sys
    monkeypatch.setitem(sys.modules, 'torchvision', None)     # any `import torchvision` would now fail
    assert VGGLoss(weights=vgg_file)(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16)).item() == 0
