"Importing NVIDIA pix2pixHD generators: same outputs as a module with NVIDIA's layout, safe loading, refusals, the CLI."
import functools, io, os, subprocess, sys
from pathlib import Path
import pytest
import torch
import torch.nn as nn

from nfp_nb.core import CheckpointError, ConfigError
from nfp_nb.checkpoint import load_generator, load_checkpoint, load_resume_state, LATEST
from nfp_nb.importer import import_pix2pixhd, read_state_dict
from nfp_nb.cli import import_main

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.py


# ---------------------------------------------------------------- NVIDIA's module layout (from its layer description)

def nv_norm(kind):
    return functools.partial(nn.InstanceNorm2d, affine=False) if kind == 'instance' else functools.partial(nn.BatchNorm2d, affine=True)

class ResnetBlockNV(nn.Module):
    def __init__(self, dim, norm):
        super().__init__()
        self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm(dim), nn.ReLU(True),
                                        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm(dim))
    def forward(self, x): return x + self.conv_block(x)

class GlobalGeneratorNV(nn.Module):
    def __init__(self, input_nc, output_nc, ngf, n_downsampling, n_blocks, norm='instance'):
        super().__init__()
        nl = nv_norm(norm)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), nl(ngf), nn.ReLU(True)]
        for i in range(n_downsampling):
            m = 2**i
            layers += [nn.Conv2d(ngf*m, ngf*m*2, 3, stride=2, padding=1), nl(ngf*m*2), nn.ReLU(True)]
        layers += [ResnetBlockNV(ngf * 2**n_downsampling, nl) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            m = 2**(n_downsampling - i)
            layers += [nn.ConvTranspose2d(ngf*m, ngf*m//2, 3, stride=2, padding=1, output_padding=1), nl(ngf*m//2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
    def forward(self, x): return self.model(x)

class LocalEnhancerNV(nn.Module):
    def __init__(self, input_nc, output_nc, ngf, n_downsample_global, n_blocks_global, n_local_enhancers, n_blocks_local,
                 norm='instance'):
        super().__init__()
        self.n_local_enhancers, nl = n_local_enhancers, nv_norm(norm)
        g = GlobalGeneratorNV(input_nc, output_nc, ngf * 2**n_local_enhancers, n_downsample_global, n_blocks_global, norm).model
        self.model = nn.Sequential(*[g[i] for i in range(len(g) - 3)])
        for n in range(1, n_local_enhancers + 1):
            nf = ngf * 2**(n_local_enhancers - n)
            down = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, nf, 7), nl(nf), nn.ReLU(True),
                    nn.Conv2d(nf, nf*2, 3, stride=2, padding=1), nl(nf*2), nn.ReLU(True)]
            up = [ResnetBlockNV(nf*2, nl) for _ in range(n_blocks_local)]
            up += [nn.ConvTranspose2d(nf*2, nf, 3, stride=2, padding=1, output_padding=1), nl(nf), nn.ReLU(True)]
            if n == n_local_enhancers: up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
            setattr(self, f'model{n}_1', nn.Sequential(*down))
            setattr(self, f'model{n}_2', nn.Sequential(*up))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)
    def forward(self, input):
        input_downsampled = [input]
        for i in range(self.n_local_enhancers): input_downsampled.append(self.downsample(input_downsampled[-1]))
        output_prev = self.model(input_downsampled[-1])
        for n in range(1, self.n_local_enhancers + 1):
            model_downsample, model_upsample = getattr(self, f'model{n}_1'), getattr(self, f'model{n}_2')
            input_i = input_downsampled[self.n_local_enhancers - n]
            output_prev = model_upsample(model_downsample(input_i) + output_prev)
        return output_prev

def randomize(m, seed=0):
    "Random weights, and random running statistics for batch norms, so every tensor matters; eval mode."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, t in m.state_dict().items():
            if not t.is_floating_point(): t.fill_(3)
            elif k.endswith('running_var'): t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif k.endswith(('running_mean', 'bias')): t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.ndim == 1: t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
            else: t.copy_(torch.randn(t.shape, generator=g) * (2 / t[0].numel())**0.5)
    return m.eval()

def frames(seed=0, n=2, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1

def saved(tmp_path, ref, name='latest_net_G.pth'):
    p = tmp_path / name
    torch.save(ref.state_dict(), p)
    return p

def assert_same_function(G, ref, seed=0):
    x = frames(seed)
    with torch.no_grad(): torch.testing.assert_close(G(x).float(), ref(x), atol=1e-5, rtol=1e-5)

def files_under(p: Path):
    return sorted(str(f.relative_to(p)) for f in p.rglob('*')) if p.exists() else []


# ---------------------------------------------------------------- same outputs as NVIDIA's layout

@pytest.mark.parametrize('kw', [dict(ngf=4, n_downsampling=2, n_blocks=1, norm='instance'),
                                dict(ngf=4, n_downsampling=1, n_blocks=2, norm='batch'),
                                dict(ngf=8, n_downsampling=2, n_blocks=0, norm='instance')])
def test_global_generator_matches_reference(tmp_path, kw):
    ref = randomize(GlobalGeneratorNV(3, 3, **kw), seed=1)
    stem = import_pix2pixhd(saved(tmp_path, ref), tmp_path / 'run', 'A')
    assert (tmp_path / 'run' / 'A' / LATEST).read_text().strip() == stem.name
    G = load_generator(tmp_path / 'run' / 'A')
    assert type(G).__name__ == 'GlobalGenerator' and not G.training
    c = G.cfg
    assert (c.arch, c.ngf, c.n_downsampling, c.n_blocks, c.norm) == ('global', kw['ngf'], kw['n_downsampling'], kw['n_blocks'], kw['norm'])
    assert (c.upsample, c.residual, c.warp, c.skip_cond, c.spectral_norm) == ('transpose', False, False, False, False)
    assert_same_function(G, ref)


@pytest.mark.parametrize('kw', [dict(ngf=4, n_downsample_global=1, n_blocks_global=1, n_local_enhancers=1, n_blocks_local=1),
                                dict(ngf=4, n_downsample_global=1, n_blocks_global=1, n_local_enhancers=2, n_blocks_local=1),
                                dict(ngf=4, n_downsample_global=1, n_blocks_global=2, n_local_enhancers=1, n_blocks_local=2, norm='batch')])
def test_local_enhancer_matches_reference(tmp_path, kw):
    ref = randomize(LocalEnhancerNV(3, 3, **kw), seed=2)
    import_pix2pixhd(saved(tmp_path, ref), tmp_path / 'run', 'B')
    G = load_generator(tmp_path / 'run' / 'B' / LATEST)
    c = G.cfg
    assert type(G).__name__ == 'LocalEnhancer'
    assert (c.arch, c.ngf, c.n_downsampling, c.n_blocks, c.n_local_enhancers, c.n_blocks_local, c.norm) == \
           ('local', kw['ngf'], kw['n_downsample_global'], kw['n_blocks_global'], kw['n_local_enhancers'],
            kw['n_blocks_local'], kw.get('norm', 'instance'))
    assert_same_function(G, ref, seed=3)


def test_wrapped_dataparallel_and_half_files(tmp_path):
    ref = randomize(GlobalGeneratorNV(3, 3, 4, 1, 1), seed=4)
    sd = ref.state_dict()
    torch.save({'state_dict': sd, 'epoch': 200}, tmp_path / 'a.pth')
    torch.save({'model': {'module.' + k: v for k, v in sd.items()}}, tmp_path / 'b.pth')
    for f in ('a.pth', 'b.pth'):
        import_pix2pixhd(tmp_path / f, tmp_path / f'run_{f}', 'A')
        assert_same_function(load_generator(tmp_path / f'run_{f}' / 'A'), ref)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, tmp_path / 'h.pth')
    G = load_generator(import_pix2pixhd(tmp_path / 'h.pth', tmp_path / 'run_h'))
    assert all(p.dtype == torch.float32 for p in G.parameters())


def test_channels_are_inferred(tmp_path):
    ref = randomize(GlobalGeneratorNV(4, 1, 4, 1, 1), seed=5)
    G = load_generator(import_pix2pixhd(saved(tmp_path, ref), tmp_path / 'run'))
    assert (G.cfg.input_nc, G.cfg.output_nc) == (4, 1)
    x = torch.rand(1, 4, 32, 32) * 2 - 1
    with torch.no_grad(): torch.testing.assert_close(G(x), ref(x), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- what the checkpoint holds, and what it can be used for

def test_meta_and_no_resume(tmp_path):
    ref = randomize(GlobalGeneratorNV(3, 3, 4, 2, 1), seed=6)
    src = saved(tmp_path, ref)
    stem = import_pix2pixhd(src, tmp_path / 'run', 'A')
    ck = load_checkpoint(stem)
    import hashlib
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert ck.meta['source'] == 'pix2pixhd' and ck.meta['source_sha256'] == sha and ck.meta['source_file'] == str(src.resolve())
    assert 'preset' in ck.meta and ck.meta['preset'] is None
    assert ck.meta['pix2pixhd'] == {'netG': 'global', 'ngf': 4, 'n_downsample_global': 2, 'n_blocks_global': 1,
                                    'norm': 'instance', 'input_nc': 3, 'output_nc': 3}
    assert stem.name == f'pix2pixhd-{sha[:8]}'
    assert (ck.discriminator, ck.ema, ck.resume_state, ck.epoch, ck.step) == (None, None, None, None, None)
    with pytest.raises(CheckpointError, match='cannot resume training'): load_resume_state(stem)
    # importing the same file again rewrites the same checkpoint; another name is another checkpoint
    assert import_pix2pixhd(src, tmp_path / 'run', 'A') == stem
    other = import_pix2pixhd(src, tmp_path / 'run', 'A', name='ep200')
    assert other.name == 'ep200' and (tmp_path / 'run' / 'A' / LATEST).read_text().strip() == 'ep200'
    with pytest.raises(ConfigError): import_pix2pixhd(src, tmp_path / 'run', 'A', name=LATEST)
    with pytest.raises(ConfigError): import_pix2pixhd(src, tmp_path / 'run', 'C')


def test_train_resume_is_refused_and_rollout_runs(tmp_path, capsys):
    "`nfp_train --resume` on an imported A: one CheckpointError line; `nfp_rollout` renders with it."
    from nfp_nb.data import FrameStore
    from nfp_nb.cli import run_training, rollout_main
    run = tmp_path / 'run'
    FrameStore.prepare(None, run=run, size=32, max_frames=6, progress=False)
    import_pix2pixhd(saved(tmp_path, randomize(GlobalGeneratorNV(3, 3, 4, 2, 1), seed=7)), run, 'A')
    with pytest.raises(CheckpointError, match='holds weights only, no resume state'):
        run_training(['--run', str(run), '--net', 'A', '--resume', '--quiet', '--device', 'cpu'])
    out = tmp_path / 'roll.mp4'
    rollout_main(['--run', str(run), '--steps', '2', '--size', '32', '--out', str(out), '--device', 'cpu'])
    assert out.stat().st_size > 0


# ---------------------------------------------------------------- refusals: one line, nothing written

class _Evil:
    "Unpickling this would create a file."
    def __init__(self, target): self.target = target
    def __reduce__(self): return (io.open, (str(self.target), 'w'))

def test_pickled_objects_are_refused_without_running_them(tmp_path):
    ref = GlobalGeneratorNV(3, 3, 4, 1, 1)
    torch.save({**ref.state_dict(), 'extra': _Evil(tmp_path / 'pwned')}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointError, match=r'evil\.pth: refused: it holds a pickled Python object') as e:
        import_pix2pixhd(tmp_path / 'evil.pth', tmp_path / 'run')
    assert 'weights_only=True' in str(e.value) and '\n' not in str(e.value)
    assert not (tmp_path / 'pwned').exists() and not (tmp_path / 'run').exists()
    torch.save(ref, tmp_path / 'whole.pth')                    # the whole module pickled, not its state dict
    with pytest.raises(CheckpointError, match='GlobalGeneratorNV'): read_state_dict(tmp_path / 'whole.pth')


def _bad_files(tmp_path):
    ref = randomize(GlobalGeneratorNV(3, 3, 4, 2, 1))
    sd = ref.state_dict()
    good = saved(tmp_path, ref)
    (tmp_path / 'notes.pth').write_text('not a torch file\n')
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'trunc.pth').write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    torch.save({**sd, 'model.4.weight': torch.zeros(8, 4, 5, 5)}, tmp_path / 'shape.pth')
    torch.save({k: v for k, v in sd.items() if k != 'model.10.conv_block.5.weight'}, tmp_path / 'lacks.pth')
    torch.save({'scale0_layer0.0.weight': torch.zeros(4, 6, 4, 4)}, tmp_path / 'latest_net_D.pth')
    torch.save({**sd, 'epoch': 3}, tmp_path / 'extra.pth')
    return {  # argv -> what the one line must say
        ('missing.pth',): 'no such file',
        ('notes.pth',): 'not a torch file',
        ('empty.pth',): 'empty, not a torch file',
        ('trunc.pth',): 'truncated or corrupt',
        ('shape.pth',): "tensor 'model.4.weight' has shape (8, 4, 5, 5), expected (8, 4, 3, 3)",
        ('lacks.pth',): "lacks tensor 'model.10.conv_block.5.weight'",
        ('latest_net_D.pth',): 'discriminator',
        ('extra.pth',): "entry 'epoch' is not a tensor",
        ('latest_net_G.pth', '--ngf', '8'): "tensor 'model.1.weight' has shape (4, 3, 7, 7), expected (8, 3, 7, 7)",
        ('latest_net_G.pth', '--n-blocks', '3'): "lacks tensor 'model.11.conv_block.1.weight'",
        ('latest_net_G.pth', '--n-local-enhancers', '1'): 'local generator',
        ('latest_net_G.pth', '--n-blocks-local', '2'): 'holds a global generator',
        ('latest_net_G.pth', '--net', 'C'): 'invalid choice',
        ('latest_net_G.pth', '--ngf', '0'): 'ngf=0',
    }

def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys):
    for argv, says in _bad_files(tmp_path).items():
        run = tmp_path / 'run'
        with pytest.raises(SystemExit) as e: import_main([str(tmp_path / argv[0]), *argv[1:], '--run', str(run)])
        out, err = capsys.readouterr()
        assert e.value.code == 2 and out == '', argv
        assert err.startswith('nfp_import: error: ') and err.count('\n') == 1 and says in err, (argv, err)
        flag_error = '--net' in argv or '0' in argv               # a bad flag value: the line names the flag instead
        if not flag_error: assert str(tmp_path / argv[0]) in err, (argv, err)
        assert not run.exists(), argv


# ---------------------------------------------------------------- the console script, in a fresh interpreter

CLI = [sys.executable, '-c', 'from nfp_nb.cli import import_main; import_main()']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}

def test_cli_success(tmp_path):
    ref = randomize(LocalEnhancerNV(3, 3, 4, 1, 1, 1, 1), seed=8)
    src = saved(tmp_path, ref)
    r = subprocess.run(CLI + [str(src), '--run', str(tmp_path / 'run'), '--net', 'A'], capture_output=True, text=True,
                       env=ENV, cwd=tmp_path, timeout=120)
    assert r.returncode == 0 and r.stderr == '', r.stderr
    stem = (tmp_path / 'run' / 'A' / LATEST).read_text().strip()
    assert r.stdout.count('\n') == 1 and str(tmp_path / 'run' / 'A' / stem) in r.stdout
    assert 'pix2pixHD local generator, ngf=4, n_downsampling=1, n_blocks=1, n_local_enhancers=1, n_blocks_local=1' in r.stdout
    assert_same_function(load_generator(tmp_path / 'run' / 'A'), ref)


def test_cli_bad_input(tmp_path):
    torch.save({'model.1.weight': torch.zeros(4, 3, 7, 7), 'x': _Evil(tmp_path / 'pwned')}, tmp_path / 'evil.pth')
    r = subprocess.run(CLI + [str(tmp_path / 'evil.pth'), '--run', str(tmp_path / 'run')], capture_output=True, text=True,
                       env=ENV, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and r.stdout == '', r.stdout
    assert r.stderr.count('\n') == 1 and str(tmp_path / 'evil.pth') in r.stderr and 'refused' in r.stderr, r.stderr
    assert not (tmp_path / 'pwned').exists() and not (tmp_path / 'run').exists()
