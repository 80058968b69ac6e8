"Tests for nfp_nb.models: pix2pixHD parity, sizes, extras, presets, summary (and the trainer's EMA, inference settings)."
import dataclasses
from dataclasses import asdict
from pathlib import Path
import pytest, torch
from nfp_nb.core import ConfigError, to_float, to_uint8
from nfp_nb.models import *
from nfp_nb.models import valid_sizes, size_message, pad_to_multiple
from nfp_nb.core import autocast, inference_settings
from nfp_nb.train import EMA

def _meta_count(fn):
    with torch.device('meta'): return count_params(fn())

@pytest.mark.parametrize('fn,n', [
    (lambda: GlobalGenerator(3, 3, 64, 4, 9, 'instance'), 182_443_267),
    (lambda: GlobalGenerator(3, 3, 32, 3, 6), 7_865_219),
    (lambda: LocalEnhancer(3, 3, ngf=32, n_downsample_global=3, n_blocks_global=9, n_local_enhancers=1, n_blocks_local=3), 45_851_907),
    (lambda: MultiscaleDiscriminator(input_nc=6, ndf=64, n_layers=3, norm='instance', num_D=2), 5_535_618),
    (lambda: MultiscaleDiscriminator(input_nc=6, ndf=64, n_layers=3, norm='instance', num_D=3), 8_303_427),
    (lambda: build_generator(GeneratorConfig(ngf=32, n_downsampling=3, n_blocks=9, arch='local')), 45_851_907),
    (lambda: build_generator(get_preset('default').generator), 182_443_267),
    (lambda: build_discriminator(get_preset('default').discriminator), 5_535_618),
])
def test_parity_param_counts(fn, n):
    assert _meta_count(fn) == n

def test_discriminator_feature_shapes():
    with torch.device('meta'):
        feats = MultiscaleDiscriminator(6, 64, 3, num_D=2)(torch.empty(1, 6, 256, 256))
    assert [tuple(f.shape[1:]) for f in feats[0]] == [(64,129,129), (128,65,65), (256,33,33), (512,34,34), (1,35,35)]
    assert [tuple(f.shape[1:]) for f in feats[1]] == [(64,65,65), (128,33,33), (256,17,17), (512,18,18), (1,19,19)]

def test_first_d_layer_has_no_norm_and_kernel4():
    d = NLayerDiscriminator(6, 8, 3)
    assert len(d.layers) == 5 and len(d.layers[0]) == 2
    convs = [l[0] for l in d.layers]
    assert [c.kernel_size for c in convs] == [(4, 4)] * 5 and [c.padding for c in convs] == [(2, 2)] * 5
    assert [c.stride for c in convs] == [(2, 2)] * 3 + [(1, 1)] * 2

def test_init_statistics():
    torch.manual_seed(0)
    g = GlobalGenerator(3, 3, 16, 2, 1, norm='batch')
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    bn = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(abs(m.weight.mean().item() - 1) < 0.02 and m.bias.abs().max() == 0 for m in bn)

@pytest.mark.parametrize('kw', [{}, {'upsample': 'resize'}, {'norm': 'batch'}, {'norm': 'none'}, {'spectral_norm': True}])
def test_generator_shapes_and_grad(kw):
    g = GlobalGenerator(3, 3, 8, 2, 1, **kw)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    y.mean().backward()
    assert all(p.grad is not None for p in g.parameters())

@pytest.mark.parametrize('arch', ['global', 'local'])
def test_sizes_pad_and_crop(arch):
    cfg = GeneratorConfig(ngf=4, n_downsampling=2, n_blocks=1, arch=arch)
    g = build_generator(cfg)
    assert g.size_multiple == (4 if arch == 'global' else 8)
    for h, w in [(32, 32), (30, 45), (17, 9)]:
        assert g(torch.randn(1, 3, h, w)).shape == (1, 3, h, w)
    with pytest.raises(ConfigError, match='too small'): g(torch.randn(1, 3, 3, 5))
    g.pad_input = False
    with pytest.raises(ConfigError, match='nearest valid sizes'): g(torch.randn(1, 3, 30, 45))

def test_valid_sizes_16_9():
    assert valid_sizes(288, 512, 32)[0] == (288, 512)
    assert valid_sizes(576, 1024, 32)[0] == (576, 1024)
    assert valid_sizes(144, 256, 16)[0] == (144, 256) and valid_sizes(432, 768, 16)[0] == (432, 768)
    assert (144, 256) not in valid_sizes(144, 256, 32)
    m = size_message(144, 256, 32)
    assert '256×144' in m and '512×288' in m and '256×128' in m and '256×160' in m
    p, hw = pad_to_multiple(torch.randn(1, 3, 30, 45), 16)
    assert p.shape[-2:] == (32, 48) and hw == (30, 45)

def test_residual_starts_as_identity():
    g = GlobalGenerator(3, 3, 8, 2, 1, residual=True)
    f = torch.randint(0, 256, (2, 24, 40, 3), dtype=torch.uint8)
    assert torch.equal(to_uint8(g(to_float(f))), f)
    g.head[1].weight.data.normal_(0, 0.02)
    y = g(to_float(f)); assert y.abs().max() < 1
    with pytest.raises(ConfigError, match='output_nc <= input_nc'): GlobalGenerator(3, 4, 8, 2, 1, residual=True)

def test_residual_local_enhancer():
    g = LocalEnhancer(3, 3, 4, 1, 1, 1, 1, residual=True)
    f = torch.randint(0, 256, (1, 16, 16, 3), dtype=torch.uint8)
    assert torch.equal(to_uint8(g(to_float(f))), f)

@pytest.mark.parametrize('arch', ['global', 'local'])
def test_skip_conditioning(arch):
    g = build_generator(GeneratorConfig(ngf=4, n_downsampling=1, n_blocks=1, arch=arch, skip_cond=True, max_skip=3))
    x = torch.randn(2, 3, 16, 16)
    a, b = g(x, torch.tensor([1, 1])), g(x, torch.tensor([3, 3]))
    assert a.shape == x.shape and not torch.allclose(a, b)
    assert torch.allclose(g(x, 2)[0], g(x, torch.tensor([2, 1]))[0])   # an int k applies to the whole batch
    with pytest.raises(ConfigError, match='G\\(x, k\\)'): g(x)
    plain = build_generator(GeneratorConfig(ngf=4, n_downsampling=1, n_blocks=1, arch=arch))
    assert count_params(g) > count_params(plain)

def test_skip_cond_off_by_default():
    c = GeneratorConfig()
    assert not (c.skip_cond or c.residual or c.spectral_norm) and c.upsample == 'transpose' and c.norm == 'instance'
    assert not DiscriminatorConfig().spectral_norm

def test_spectral_norm_in_g_and_d():
    g = GlobalGenerator(3, 3, 4, 1, 1, spectral_norm=True)
    d = MultiscaleDiscriminator(6, 4, 2, 2, spectral_norm=True)
    convs = [m for m in list(g.modules()) + list(d.modules()) if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(hasattr(m, 'parametrizations') for m in convs)
    assert g(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    assert count_params(g) == count_params(GlobalGenerator(3, 3, 4, 1, 1))

def test_channels_last_matches():
    torch.manual_seed(0)
    for g in [GlobalGenerator(3, 3, 8, 2, 1), LocalEnhancer(3, 3, 4, 1, 1, 1, 1, upsample='resize'),
              GlobalGenerator(3, 3, 8, 2, 1, skip_cond=True, max_skip=2)]:
        g.eval(); x = torch.randn(1, 3, 32, 32)
        k = torch.tensor([1]) if g.cfg.skip_cond else None
        with torch.inference_mode():
            a = g(x, k)
            g = g.to(memory_format=torch.channels_last)
            b = g(x.to(memory_format=torch.channels_last), k)
        assert torch.allclose(a, b, atol=1e-4)
    d = MultiscaleDiscriminator(6, 4, 2, 2).to(memory_format=torch.channels_last)
    assert len(d(torch.randn(1, 6, 32, 32).to(memory_format=torch.channels_last))) == 2

def test_local_enhancer_load_and_freeze():
    le = LocalEnhancer(3, 3, ngf=4, n_downsample_global=2, n_blocks_global=1)
    gg = GlobalGenerator(3, 3, 8, 2, 1)
    le.load_global(gg).freeze_global(True)
    sd = le.global_net.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in gg.state_dict().items() if not k.startswith('head.'))
    le.train()
    assert not le.global_net.training and le.local_up.training
    y = le(torch.randn(1, 3, 16, 16)); y.mean().backward()
    assert all(p.grad is None for p in le.global_net.parameters())
    assert all(p.grad is not None for p in le.local_up.parameters())
    le.freeze_global(False); le.train()
    assert le.global_net.training and all(p.requires_grad for p in le.parameters())
    with pytest.raises(ConfigError, match='n_blocks=2'): le.load_global(GlobalGenerator(3, 3, 8, 2, 2))

def test_multiscale_forward_structure():
    d = MultiscaleDiscriminator(6, 8, 3, 3)
    out = d(torch.randn(2, 6, 64, 64))
    assert len(out) == 3 and all(len(s) == 5 for s in out)
    assert [s[-1].shape[1] for s in out] == [1, 1, 1]
    assert out[0][0].shape[-1] > out[1][0].shape[-1] > out[2][0].shape[-1]

def test_configs_presets_builders():
    for name in ('tiny', 'small', 'default'):
        p = get_preset(name)
        assert p.name == name and isinstance(p.generator, GeneratorConfig)
        assert config_from_dict(Preset, asdict(p)) == p
    p = get_preset('tiny')
    g = build_generator(asdict(p.generator))
    assert g.cfg == p.generator and build_discriminator(p.discriminator).cfg == p.discriminator
    assert build_generator(g.cfg).cfg == g.cfg
    assert get_preset('tiny') is not get_preset('tiny')
    with pytest.raises(ConfigError, match='unknown preset'): get_preset('nope')
    with pytest.raises(ConfigError, match='unknown field'): config_from_dict(GeneratorConfig, {'nfg': 3})
    with pytest.raises(ConfigError, match="arch='x'"): build_generator(GeneratorConfig(arch='x'))
    with pytest.raises(ConfigError, match='norm'): build_generator(GeneratorConfig(norm='layer'))
    with pytest.raises(ConfigError, match='upsample'): build_generator(GeneratorConfig(ngf=4, n_downsampling=1, n_blocks=1, upsample='pixel'))

def test_tiny_preset_trains_at_64():
    p = get_preset('tiny')
    assert p.size == 64
    g, d = build_generator(p.generator), build_discriminator(p.discriminator)
    x = torch.randn(p.train['batch_size'], 3, 64, 64)
    y = g(x); out = d(torch.cat([x, y], 1))
    assert y.shape == x.shape and len(out) == p.discriminator.num_D
    sum(o[-1].mean() for o in out).backward()
    assert all(q.grad is not None for q in g.parameters())

def test_state_dict_round_trip():
    p = get_preset('tiny')
    g1 = build_generator(p.generator); g2 = build_generator(p.generator)
    g2.load_state_dict(g1.state_dict(), strict=True)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(g1(x), g2(x))

def test_ema():
    g = GlobalGenerator(3, 3, 4, 1, 1)
    ema = EMA(g, decay=0.9)
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training
    w0 = g.front[1].weight.detach().clone()
    with torch.no_grad():
        for p in g.parameters(): p.add_(1.0)
    ema.update(g)
    assert torch.allclose(ema.module.front[1].weight, w0 + 0.1, atol=1e-6)
    assert ema.module.cfg == g.cfg
    g2 = GlobalGenerator(3, 3, 4, 1, 1); g2.load_state_dict(ema.state_dict())
    with pytest.raises(ConfigError): EMA(g, 1.0)

def test_model_summary():
    s = model_summary(get_preset('small').generator, 256)
    assert s['params'] == 7_865_219 and 19.0 < s['gflops'] < 20.0
    s2 = model_summary(build_generator(get_preset('tiny').generator), (64, 96))
    assert s2['size'] == '96×64' and s2['gflops'] > 0 and s2['activations_mb'] > 0
    sd = model_summary(get_preset('default').discriminator, 256)
    assert sd['params'] == 5_535_618
    t = summary_table({'a': get_preset('tiny').generator, 'b': GeneratorConfig(ngf=4, n_downsampling=1, n_blocks=1, arch='local', skip_cond=True)}, 64)
    assert t.count('\n') == 3 and '| a |' in t

def test_inference_settings():
    dtype, fmt = inference_settings('cpu')
    # bfloat16 exactly where the CPU runs it natively (AVX-512 BF16 or AMX, read here from the CPU's flags), else float32
    cpuinfo = Path('/proc/cpuinfo')
    native = {'avx512_bf16', 'amx_bf16'} & set(cpuinfo.read_text().split() if cpuinfo.exists() else [])
    assert dtype == (torch.bfloat16 if native else torch.float32) and fmt == torch.contiguous_format
    g = GlobalGenerator(3, 3, 8, 2, 1).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        a = g(x)
        with autocast('cpu', torch.bfloat16): b = g(x)
        with autocast('cpu', torch.float32): c = g(x)
    assert torch.equal(a, c) and (a - b.float()).abs().max() < 0.1


# The edge cases of the examples in nbs/04_models.ipynb (the notebook keeps a short example of each).
from fastcore.test import test_eq, test_fail
test_eq.__test__ = test_fail.__test__ = False   # fastcore's checks: not tests for pytest to collect

def test_generator_extras_residual_skip_warp_spectral():
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    gr = GlobalGenerator(3, 3, 8, 2, 1, residual=True)
    f = torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8)
    test_eq(to_uint8(gr(to_float(f)))[0], f[0])   # untrained residual G returns its input frame

    gk = GlobalGenerator(3, 3, 8, 2, 1, skip_cond=True, max_skip=4)
    test_eq(gk.front[1].in_channels, 4)
    y1, y4 = gk(x, torch.tensor([1, 1])), gk(x, torch.tensor([4, 4]))
    assert not torch.allclose(y1, y4)
    test_fail(lambda: gk(x), contains="call G(x, k)")
    gw = GlobalGenerator(3, 3, 8, 2, 1, warp=True)
    test_eq(gw.head[1].out_channels, 5)
    test_eq(to_uint8(gw(to_float(f)))[0], f[0])   # untrained warp G returns its input frame too
    gs = GlobalGenerator(3, 3, 8, 2, 1, spectral_norm=True)
    assert hasattr(gs.front[1], 'parametrizations'); test_eq(gs(x).shape, x.shape)

def test_local_enhancer_parity_sizes_and_global_net():
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.device('meta'):
        test_eq(count_params(LocalEnhancer(3, 3, 32, 3, 9, 1, 3)), 45_851_907)
    le = LocalEnhancer(3, 3, ngf=4, n_downsample_global=2, n_blocks_global=1, n_local_enhancers=1, n_blocks_local=1)
    test_eq(le.size_multiple, 8)
    test_eq(le(x).shape, x.shape); test_eq(le(x[..., :30, :45]).shape, (2, 3, 30, 45))
    gg = GlobalGenerator(3, 3, 8, 2, 1)
    le.load_global(gg).freeze_global()
    assert torch.equal(le.global_net.front[1].weight, gg.front[1].weight)
    assert not any(p.requires_grad for p in le.global_net.parameters())
    le.train(); assert not le.global_net.training
    test_fail(lambda: le.load_global(GlobalGenerator(3, 3, 4, 2, 1)), contains="ngf=4 (needs 8)")
    le.freeze_global(False); assert all(p.requires_grad for p in le.parameters())

def test_builders_and_presets_example_checks():
    p = get_preset('tiny')
    G, D = build_generator(p.generator), build_discriminator(p.discriminator)
    test_eq(type(G), GlobalGenerator); test_eq(G.cfg, p.generator)
    test_eq(build_generator(asdict(p.generator)).cfg, p.generator)          # from JSON-like dicts too
    test_eq(config_from_dict(Preset, asdict(p)), p)
    test_eq(type(build_generator(GeneratorConfig(ngf=4, n_downsampling=1, n_blocks=1, arch='local'))), LocalEnhancer)
    test_eq(get_preset('small', size=128).size, 128)
    test_eq((get_preset('tiny').train, get_preset('small').train), ({'batch_size': 2}, {}))   # only what differs from TrainConfig
    test_fail(lambda: get_preset('huge'), contains="choose one of tiny, small, default")
    with torch.device('meta'): test_eq(count_params(build_generator(get_preset('small').generator)), 7_865_219)
