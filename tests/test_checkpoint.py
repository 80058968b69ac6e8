"Checkpoints: bit-exact round trips, strict loading, refused files, listing, and crash safety of the write order."
import os, sys, io, json, time, errno, signal, random, pickle, hashlib, shutil, subprocess, textwrap
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn as nn

from nfp_nb.core import CheckpointError
from nfp_nb.models import GeneratorConfig, DiscriminatorConfig, build_generator, build_discriminator
from nfp_nb.train import EMA, capture_rng_state, restore_rng_state
from nfp_nb import checkpoint as ckmod
from nfp_nb.checkpoint import (save_checkpoint, load_generator, load_checkpoint, resolve_checkpoint, list_checkpoints,
                               checkpoint_fingerprint, checkpoint_ref, load_resume_state, load_state_strict,
                               format_checkpoints, checkpoint_name)

ROOT = Path(__file__).resolve().parents[1]
TINY_G = dict(ngf=4, n_downsampling=2, n_blocks=1)
TINY_D = dict(ndf=4, n_layers=1, num_D=2)


pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.py


def tiny_g(seed=0, **kw):
    torch.manual_seed(seed)
    return build_generator(GeneratorConfig(**{**TINY_G, **kw}))

def tiny_d(seed=0):
    torch.manual_seed(seed)
    return build_discriminator(DiscriminatorConfig(**TINY_D))

def same_state(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a: assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    return True

def resume_state_for(G, step=3):
    "What a trainer saves: an Adam-shaped optimizer state (built by hand: creating a torch optimizer imports"
    "torch._dynamo, seconds on this machine; the notebook and the trainer's tests use a real one), schedule, RNG, step."
    params = list(G.parameters())
    opt = {'state': {i: {'step': torch.tensor(2.0), 'exp_avg': torch.randn_like(p), 'exp_avg_sq': torch.rand_like(p)}
                     for i, p in enumerate(params)},
           'param_groups': [{'lr': 2e-4, 'betas': (0.5, 0.999), 'eps': 1e-8, 'weight_decay': 0, 'amsgrad': False,
                             'maximize': False, 'foreach': None, 'capturable': False, 'differentiable': False,
                             'fused': None, 'params': list(range(len(params)))}]}
    sched = {'base_lrs': [2e-4], 'last_epoch': 2, '_step_count': 3, 'verbose': False, '_last_lr': [1.6e-4], 'lr_lambdas': [None]}
    return {'opt_G': opt, 'sched_G': sched, 'step': step, 'rng': capture_rng_state()}


# ---------------------------------------------------------------- round trips

def test_round_trip_bit_exact(tmp_path):
    G, D = tiny_g(1), tiny_d(2)
    ema = EMA(G, decay=0.9)
    with torch.no_grad():
        for p in G.parameters(): p.add_(0.01)
    ema.update(G)                                    # EMA now differs from G
    rs = resume_state_for(G)
    stem = save_checkpoint(tmp_path/'run/A/ep0003', G, discriminator=D, ema=ema, resume_state=rs,
                           meta={'epoch': 3, 'step': 30, 'losses': {'G': torch.tensor(1.5), 'D': np.float32(0.25)},
                                 'data': {'path': tmp_path/'frames', 'n': np.int64(4)}})
    assert stem == tmp_path/'run/A/ep0003'
    assert sorted(f.name for f in stem.parent.iterdir()) == ['ep0003.json', 'ep0003.safetensors', 'ep0003.state.pt', 'latest']
    assert (stem.parent/'latest').read_text().strip() == 'ep0003'

    G2 = load_generator(stem)
    assert type(G2) is type(G) and G2.cfg == G.cfg and not G2.training
    same_state(G.state_dict(), G2.state_dict())
    x = torch.randn(2, 3, 32, 32)
    G.eval()
    with torch.no_grad(): assert torch.equal(G(x), G2(x))
    Ge = load_generator(stem, ema=True)
    same_state(ema.module.state_dict(), Ge.state_dict())
    assert any(not torch.equal(a, b) for a, b in zip(Ge.state_dict().values(), G.state_dict().values()))
    assert G2.checkpoint['fingerprint'] == checkpoint_fingerprint(stem) and Ge.checkpoint['ema']

    ck = load_checkpoint(stem)
    same_state(D.state_dict(), ck.discriminator)
    D2 = ck.build_discriminator()
    xy = torch.randn(1, 6, 32, 32)
    with torch.no_grad():
        for fa, fb in zip(D(xy), D2(xy)):
            for a, b in zip(fa, fb): assert torch.equal(a, b)
    assert ck.meta == {'epoch': 3, 'step': 30, 'losses': {'G': 1.5, 'D': 0.25}, 'data': {'path': str(tmp_path/'frames'), 'n': 4}}
    assert (ck.epoch, ck.step) == (3, 30)
    assert ck.record['ema']['decay'] == 0.9
    assert ck.record['versions']['nfp_nb'] and ck.record['created'].endswith('+00:00')
    assert ck.record['weights']['sha256'].startswith(ck.fingerprint)
    assert 'epoch=3' in repr(ck) and 'resume_state=True' in repr(ck)

    # resume state: identical optimizer/scheduler tensors and RNG streams
    r = ck.resume_state
    assert r['step'] == 3 and r['sched_G'] == rs['sched_G']
    for k, st in rs['opt_G']['state'].items():
        for name, t in st.items(): assert torch.equal(t, r['opt_G']['state'][k][name])
    restore_rng_state(r['rng']); a = (random.random(), np.random.rand(), torch.rand(2))
    restore_rng_state(rs['rng']); b = (random.random(), np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    assert r['opt_G']['param_groups'] == rs['opt_G']['param_groups']


@pytest.mark.parametrize('extra', [dict(arch='local', n_local_enhancers=1, n_blocks_local=1),
                                   dict(spectral_norm=True), dict(skip_cond=True, max_skip=4, residual=True, upsample='resize')])
def test_round_trip_variants(tmp_path, extra):
    G = tiny_g(3, **extra)
    with torch.no_grad():
        for p in G.parameters(): p.add_(torch.randn_like(p) * 0.01)   # residual heads start at zero
    stem = save_checkpoint(tmp_path/'A/ep0001', G)
    G2 = load_generator(tmp_path/'A')
    same_state(G.state_dict(), G2.state_dict())
    G.eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    k = torch.tensor([2]) if extra.get('skip_cond') else None
    with torch.no_grad(): ya, yb = G(x, k), G2(x, k)
    assert torch.equal(ya, yb), (ya - yb).abs().max()


def test_wrappers_are_unwrapped(tmp_path):
    G = tiny_g()
    save_checkpoint(tmp_path/'A/ep0001', nn.DataParallel(G), ema=G.state_dict())
    ck = load_checkpoint(tmp_path/'A')
    assert not any(k.startswith('module.') for k in ck.generator)
    same_state(G.state_dict(), ck.generator)


def test_resolve_spellings(tmp_path):
    G = tiny_g()
    s1 = save_checkpoint(tmp_path/'r/A/ep0001', G)
    s2 = save_checkpoint(tmp_path/'r/A/ep0002.json', G, resume_state={'step': 2})   # suffix dropped
    assert s2 == tmp_path/'r/A/ep0002'
    for p in ['r/A', 'r/A/latest', 'r/A/ep0002', 'r/A/ep0002.json', 'r/A/ep0002.safetensors', 'r/A/ep0002.state.pt']:
        assert resolve_checkpoint(tmp_path/p) == s2, p
    assert resolve_checkpoint(str(s1) + '.safetensors') == s1
    s3 = save_checkpoint(tmp_path/'r/A/best', G, update_latest=False)
    assert resolve_checkpoint(tmp_path/'r/A') == s2 and resolve_checkpoint(s3) == s3
    assert checkpoint_name(3) == 'ep0003' and checkpoint_name(step=12) == 'step00000012'


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_load_to_cuda(tmp_path):
    G = tiny_g(1)
    stem = save_checkpoint(tmp_path/'A/ep0001', G, discriminator=tiny_d(), resume_state={'step': 1})
    G2 = load_generator(stem, device='cuda')
    assert all(t.is_cuda for t in G2.state_dict().values())
    same_state(G.state_dict(), {k: v.cpu() for k, v in G2.state_dict().items()})
    ck = load_checkpoint(stem, device='cuda')
    assert all(t.is_cuda for t in ck.build_discriminator('cuda').state_dict().values())
    assert ck.resume_state['step'] == 1


# ---------------------------------------------------------------- refusals, one clear line each

def one_line(excinfo, *parts):
    msg = str(excinfo.value)
    assert '\n' not in msg, msg
    for p in parts: assert p in msg, msg
    return msg


def test_shape_mismatch_names_first_tensor(tmp_path):
    G = tiny_g()
    stem = save_checkpoint(tmp_path/'A/ep0001', G)
    j = json.loads((tmp_path/'A/ep0001.json').read_text())
    j['generator']['config']['ngf'] = 8
    (tmp_path/'A/ep0001.json').write_text(json.dumps(j))
    first = next(iter(G.state_dict()))
    with pytest.raises(CheckpointError) as e: load_generator(stem)
    one_line(e, 'ep0001.safetensors', repr(first), 'has shape (4, 3, 7, 7) but the config builds (8, 3, 7, 7)', 'more differences')
    with pytest.raises(CheckpointError) as e: load_checkpoint(stem)      # load_checkpoint checks too
    one_line(e, repr(first))


def test_strict_missing_and_unexpected():
    G = tiny_g()
    sd = dict(G.state_dict()); last = list(sd)[-1]; del sd[last]
    with pytest.raises(CheckpointError) as e: load_state_strict(tiny_g(), sd, 'x.safetensors')
    one_line(e, 'x.safetensors', f"lacks generator tensor {last!r}")
    sd = {**G.state_dict(), 'extra.weight': torch.zeros(1)}
    with pytest.raises(CheckpointError) as e: load_state_strict(tiny_g(), sd, 'x.safetensors')
    one_line(e, "has generator tensor 'extra.weight' that the config does not build")
    with pytest.raises(CheckpointError) as e: save_checkpoint('unused', G, ema={'w': torch.zeros(1)})
    one_line(e, 'EMA')


def test_truncated_or_modified_weights(tmp_path):
    stem = save_checkpoint(tmp_path/'A/ep0001', tiny_g())
    wf = tmp_path/'A/ep0001.safetensors'
    data = wf.read_bytes()
    wf.write_bytes(data[:len(data)//2])
    with pytest.raises(CheckpointError) as e: load_generator(stem)
    one_line(e, str(wf), 'truncated')
    # truncated, with the JSON's size edited to match: safetensors itself refuses
    j = json.loads((tmp_path/'A/ep0001.json').read_text()); j['weights']['size'] = wf.stat().st_size
    (tmp_path/'A/ep0001.json').write_text(json.dumps(j))
    with pytest.raises(CheckpointError) as e: load_generator(stem)
    one_line(e, str(wf), 'not a readable safetensors file')
    # same size, one tensor byte flipped: caught by the sha256
    stem = save_checkpoint(tmp_path/'B/ep0001', tiny_g())
    wf = tmp_path/'B/ep0001.safetensors'
    b = bytearray(wf.read_bytes()); b[-3] ^= 0xFF; wf.write_bytes(bytes(b))
    with pytest.raises(CheckpointError) as e: load_generator(stem)
    one_line(e, str(wf), 'sha256')
    with pytest.raises(CheckpointError): checkpoint_fingerprint(stem)
    load_generator(stem, verify=False)                 # the user can opt out of hashing
    (tmp_path/'B/ep0001.safetensors').unlink()
    with pytest.raises(CheckpointError) as e: load_generator(stem)
    one_line(e, 'missing', 'ep0001.json')


def test_weights_from_another_checkpoint(tmp_path):
    a = save_checkpoint(tmp_path/'A/ep0001', tiny_g(1))
    b = save_checkpoint(tmp_path/'A/ep0002', tiny_g(2))
    shutil.copy(tmp_path/'A/ep0002.safetensors', tmp_path/'A/ep0001.safetensors')   # same size, other uid
    with pytest.raises(CheckpointError) as e: load_generator(a)
    one_line(e, 'ep0001.safetensors', 'was not written with ep0001.json')


def test_newer_format_refused(tmp_path):
    stem = save_checkpoint(tmp_path/'A/ep0001', tiny_g())
    jf = tmp_path/'A/ep0001.json'
    j = json.loads(jf.read_text()); j['format_version'] = ckmod.FORMAT_VERSION + 1; jf.write_text(json.dumps(j))
    with pytest.raises(CheckpointError) as e: load_generator(tmp_path/'A')
    one_line(e, str(jf), f'format {ckmod.FORMAT_VERSION + 1}', 'upgrade nfp_nb')
    info, = list_checkpoints(tmp_path)
    assert 'upgrade' in info.error and 'ERROR' in format_checkpoints([info])
    # same format, but a config field this nfp_nb does not know (a newer package's option)
    j['format_version'] = ckmod.FORMAT_VERSION; j['generator']['config']['new_option'] = True; jf.write_text(json.dumps(j))
    with pytest.raises(CheckpointError) as e: load_generator(stem)
    one_line(e, str(jf), 'generator config cannot be used', 'new_option')


def test_not_a_checkpoint(tmp_path):
    G = tiny_g()
    cases = {}
    (tmp_path/'notes.txt').write_text('hello')
    cases['notes.txt'] = 'not a checkpoint'
    cases['missing/ep0001'] = 'no such file'
    (tmp_path/'empty').mkdir(); cases['empty'] = 'not a checkpoint'
    (tmp_path/'other.json').write_text('{"kind": "something else"}'); cases['other.json'] = 'not an nfp_nb checkpoint'
    (tmp_path/'list.json').write_text('[1, 2]'); cases['list.json'] = 'not an nfp_nb checkpoint'
    (tmp_path/'broken.json').write_text('{"kind": '); cases['broken.json'] = 'not readable JSON'
    (tmp_path/'fake.safetensors').write_bytes(b'\x00' * 64); cases['fake.safetensors'] = 'not a checkpoint'
    save_checkpoint(tmp_path/'run/A/ep0001', G); save_checkpoint(tmp_path/'run/B/ep0001', G)
    cases['run'] = 'a run folder, not a network folder'
    save_checkpoint(tmp_path/'nolatest/ep0001', G, update_latest=False); cases['nolatest'] = "no 'latest' pointer here; name one of its checkpoints: ep0001"
    (tmp_path/'badptr').mkdir(); (tmp_path/'badptr/latest').write_text('../../etc/passwd\n'); cases['badptr'] = 'not a checkpoint in this folder'
    (tmp_path/'gone').mkdir(); (tmp_path/'gone/latest').write_text('ep0009\n'); cases['gone'] = 'ep0009.json is missing'
    for p, expected in cases.items():
        with pytest.raises(CheckpointError) as e: load_generator(tmp_path/p)
        one_line(e, str(tmp_path/p), expected)
    with pytest.raises(CheckpointError) as e: load_resume_state(tmp_path/'run/A')
    one_line(e, 'without resume state')
    with pytest.raises(CheckpointError) as e: load_generator(tmp_path/'run/A', ema=True)
    one_line(e, 'no EMA weights')
    with pytest.raises(CheckpointError) as e: list_checkpoints(tmp_path/'nowhere')
    one_line(e, 'no such folder')


class Evil:
    "Unpickling this would create the marker file."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (open, (self.marker, 'w'))


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
@pytest.mark.parametrize('how', ['torch.save', 'raw pickle'])
def test_malicious_resume_state_refused(tmp_path, how):
    marker = tmp_path/'pwned'
    stem = save_checkpoint(tmp_path/'A/ep0001', tiny_g(), resume_state={'step': 1})
    sf = tmp_path/'A/ep0001.state.pt'
    if how == 'torch.save': torch.save({'step': 1, 'payload': Evil(marker)}, sf)
    else: sf.write_bytes(pickle.dumps({'payload': Evil(marker)}))
    # 1) the file no longer matches the sha256 in the JSON: refused before unpickling
    with pytest.raises(CheckpointError) as e: load_resume_state(stem)
    one_line(e, str(sf), 'refusing')
    with pytest.raises(CheckpointError): load_checkpoint(tmp_path/'A')
    # 2) an attacker who also rewrites the JSON: the weights_only unpickler still refuses
    jf = tmp_path/'A/ep0001.json'
    j = json.loads(jf.read_text())
    j['resume_state'].update(size=sf.stat().st_size, sha256=hashlib.sha256(sf.read_bytes()).hexdigest())
    jf.write_text(json.dumps(j))
    for f in (lambda: load_resume_state(stem), lambda: load_resume_state(stem, verify=False), lambda: load_checkpoint(stem)):
        with pytest.raises(CheckpointError) as e: f()
        one_line(e, str(sf), 'refused')
    assert not marker.exists()
    load_generator(stem)                              # the weights are still fine


def test_truncated_resume_state(tmp_path):
    stem = save_checkpoint(tmp_path/'A/ep0001', tiny_g(), resume_state={'x': torch.ones(1000)})
    sf = tmp_path/'A/ep0001.state.pt'
    sf.write_bytes(sf.read_bytes()[:300])
    with pytest.raises(CheckpointError) as e: load_resume_state(stem, verify=False)
    one_line(e, str(sf), 'truncated or corrupt')


def test_unsafe_resume_state_refused_before_writing(tmp_path):
    G = tiny_g()
    save_checkpoint(tmp_path/'A/ep0001', G)
    before = sorted(os.listdir(tmp_path/'A'))
    for bad, where in [({'rng': np.random.get_state()}, "resume_state['rng'][1] is a numpy.ndarray"),
                       ({'fn': lambda: 0}, "resume_state['fn'] is a builtins.function"),
                       ({'x': np.float64(1.0)}, "numpy.float64")]:
        with pytest.raises(CheckpointError) as e: save_checkpoint(tmp_path/'A/ep0002', G, resume_state=bad)
        one_line(e, where, 'weights_only')
    assert sorted(os.listdir(tmp_path/'A')) == before
    class NoCfg(nn.Module): pass
    with pytest.raises(CheckpointError) as e: save_checkpoint(tmp_path/'A/ep0003', NoCfg())
    one_line(e, '.cfg')


# ---------------------------------------------------------------- listing, fingerprints, references

def test_list_checkpoints(tmp_path):
    G = tiny_g()
    runs = tmp_path/'runs'
    save_checkpoint(runs/'r1/A/ep0001', G, meta={'epoch': 1, 'step': 10, 'losses': {'G': 1.0}})
    time.sleep(0.01)
    save_checkpoint(runs/'r1/A/ep0002', G, meta={'epoch': 2, 'step': 20}, ema=G, resume_state={'step': 20})
    time.sleep(0.01)
    a = save_checkpoint(runs/'r2/A/ep0001', tiny_g(5), meta={'epoch': 1, 'step': 5})
    time.sleep(0.01)
    save_checkpoint(runs/'r2/B/ep0001', G, meta={'epoch': 1, 'step': 7, 'net': 'B', 'predictor': checkpoint_ref(a)})
    (runs/'r1/config.json').write_text('{"size": 64}')                 # other JSON files are ignored
    (runs/'r1/A/.ep0003.safetensors.abc.tmp').write_bytes(b'junk')     # as are temp files
    infos = list_checkpoints(runs)
    assert [(i.run, i.net, i.name) for i in infos] == [('r2', 'B', 'ep0001'), ('r2', 'A', 'ep0001'),
                                                       ('r1', 'A', 'ep0002'), ('r1', 'A', 'ep0001')]
    assert [i.is_latest for i in infos] == [True, True, True, False]
    assert all(i.error is None for i in infos)
    assert infos[3].meta['losses'] == {'G': 1.0} and (infos[3].epoch, infos[3].step) == (1, 10)
    assert infos[0].meta['predictor']['fingerprint'] == checkpoint_fingerprint(a) == infos[1].fingerprint
    assert load_generator(infos[2].path).cfg == G.cfg
    assert [i.name for i in list_checkpoints(runs/'r1/A')] == ['ep0002', 'ep0001']
    assert len(list_checkpoints(runs/'r2')) == 2 and len(list_checkpoints(runs/'r1/A/ep0001.json')) == 1
    table = format_checkpoints(infos)
    assert table.splitlines()[0].split()[:3] == ['run', 'net', 'name'] and 'ema resumable' in table
    (runs/'r1/A/ep0001.safetensors').write_bytes(b'x')
    bad = [i for i in list_checkpoints(runs) if i.error]
    assert [(i.run, i.name) for i in bad] == [('r1', 'ep0001')] and 'truncated' in bad[0].error


def test_fingerprint(tmp_path):
    G = tiny_g(1)
    a = save_checkpoint(tmp_path/'A/ep0001', G)
    b = save_checkpoint(tmp_path/'A/ep0002', G)
    c = save_checkpoint(tmp_path/'A/ep0003', tiny_g(2))
    fa = checkpoint_fingerprint(a)
    assert len(fa) == 12 and fa == checkpoint_fingerprint(tmp_path/'A/ep0001.json')
    assert fa != checkpoint_fingerprint(b)          # same tensors, but a different uid in the header
    assert checkpoint_fingerprint(c) != fa and checkpoint_fingerprint(tmp_path/'A') == checkpoint_fingerprint(c)
    ref = checkpoint_ref(a)
    assert ref['path'] == str(a) and ref['fingerprint'] == fa and ref['name'] == 'ep0001'
    assert ckmod.ref_matches(ref)
    save_checkpoint(a, tiny_g(3))                    # A re-trained into the same stem: the reference no longer matches
    assert not ckmod.ref_matches(ref) and not ckmod.ref_matches({'path': str(tmp_path/'gone'), 'fingerprint': fa})


# ---------------------------------------------------------------- write order and crash safety

def test_resave_same_stem(tmp_path):
    G1, G2, G3 = tiny_g(1), tiny_g(2), tiny_g(3)
    stem = save_checkpoint(tmp_path/'A/ep0001', G1, resume_state={'step': 1})
    save_checkpoint(stem, G2, resume_state={'step': 2})
    rec = json.loads((tmp_path/'A/ep0001.json').read_text())
    assert rec['weights']['file'].startswith('ep0001-') and rec['resume_state']['file'].startswith('ep0001-')
    assert sorted(os.listdir(tmp_path/'A')) == sorted(['ep0001.json', 'latest', rec['weights']['file'], rec['resume_state']['file']])
    same_state(G2.state_dict(), load_generator(stem).state_dict())
    assert load_resume_state(stem)['step'] == 2
    assert resolve_checkpoint(tmp_path/'A'/rec['weights']['file']) == stem
    save_checkpoint(stem, G3)                         # back to the plain name, and no resume state
    assert sorted(os.listdir(tmp_path/'A')) == ['ep0001.json', 'ep0001.safetensors', 'latest']
    same_state(G3.state_dict(), load_generator(stem).state_dict())


def _wait(pid, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done: return status
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
    raise AssertionError('child did not finish')


def _save_killed_at(event_no, stem, G, **kw):
    "Fork; in the child run save_checkpoint and kill -9 it just before event number `event_no`. True if it was killed."
    pid = os.fork()
    if pid == 0:                                       # child
        try:
            count = [0]
            def event():
                if count[0] == event_no: os.kill(os.getpid(), signal.SIGKILL)
                count[0] += 1
            real_replace, real_unlink, real_save = os.replace, Path.unlink, ckmod.save_file
            def replace(a, b): event(); real_replace(a, b); event()
            def unlink(self, missing_ok=False): event(); real_unlink(self, missing_ok=missing_ok)
            def save_file(tensors, filename, metadata=None):
                real_save(tensors, filename, metadata=metadata)
                data = Path(filename).read_bytes()
                Path(filename).write_bytes(data[:len(data)//2]); event()   # killed halfway through writing
                Path(filename).write_bytes(data)
            os.replace, Path.unlink, ckmod.save_file = replace, unlink, save_file
            save_checkpoint(stem, G, **kw)
        finally:
            os._exit(0)
    status = _wait(pid)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
@pytest.mark.parametrize('same_stem', [False, True])
def test_kill_at_every_step_leaves_latest_valid(tmp_path, same_stem):
    "kill -9 before/after every rename, halfway through the weights, and during cleanup: `latest` always loads."
    old, new = tiny_g(1), tiny_g(2)
    sd_old, sd_new = old.state_dict(), new.state_dict()
    killed_at = []
    for n in range(20):
        folder = tmp_path/f'case{n}'/'A'
        save_checkpoint(folder/'ep0001', old, ema=old, resume_state={'step': 1}, meta={'step': 1})
        target = folder/('ep0001' if same_stem else 'ep0002')
        if not _save_killed_at(n, target, new, ema=new, resume_state={'step': 2}, meta={'step': 2}): break
        killed_at.append(n)
        ck = load_checkpoint(folder)                  # sha256 verified, weights strictly matched
        step = ck.resume_state['step']
        assert ck.step == step
        same_state(sd_old if step == 1 else sd_new, ck.generator)
        same_state(sd_old if step == 1 else sd_new, ck.ema)
        if step == 1: assert ck.path.name == 'ep0001'
        # the trainer then carries on: the next save works and leaves no stale temp files of that stem
        save_checkpoint(target, new, resume_state={'step': 3}, meta={'step': 3})
        assert load_resume_state(folder)['step'] == 3
        assert not [f for f in os.listdir(folder) if f.startswith('.')]
    # 9 events for a new stem (half-written weights; before/after each of 4 renames), 2 more (deleting the
    # replaced files) when re-saving a stem; each was killed once, then one run went through
    assert killed_at == list(range(11 if same_stem else 9)), killed_at


KILL_SCRIPT = textwrap.dedent('''
    import sys, torch
    from nfp_nb.models import GeneratorConfig, build_generator
    from nfp_nb.checkpoint import save_checkpoint
    G = build_generator(GeneratorConfig(ngf=16, n_downsampling=2, n_blocks=2))
    for step in range(1, 10**6):
        with torch.no_grad():
            for p in G.parameters(): p.fill_(step)
        save_checkpoint(sys.argv[1] + f"/ep{step % 3:04d}", G, resume_state={'step': step, 'w': torch.full((50000,), step)},
                        meta={'step': step})
        print(step, flush=True)
''')


@pytest.mark.skipif(sys.platform == 'win32', reason='SIGKILL')
def test_real_kill_9_while_saving(tmp_path):
    "A real process saving in a loop (re-using stems) is killed -9 at random moments; `latest` stays whole."
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])}
    rng = random.Random(0)
    p = subprocess.Popen([sys.executable, '-c', KILL_SCRIPT, str(tmp_path/'A')], stdout=subprocess.PIPE, env=env, text=True)
    try:
        line = p.stdout.readline()                    # one checkpoint done: `latest` exists from here on
        assert line.strip() == '1', line
        time.sleep(rng.uniform(0.05, 0.4))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None: p.kill()
    ck = load_checkpoint(tmp_path/'A')
    step = ck.resume_state['step']
    assert ck.step == step and step >= 1 and torch.equal(ck.resume_state['w'], torch.full((50000,), step))
    for t in ck.generator.values():
        if t.is_floating_point(): assert (t == step).all()


# ---------------------------------------------------------------- a full disk; temp files of killed writers

from nfp_nb import core
from nfp_nb.core import CacheError
from safetensors import SafetensorError


def test_checkpoint_that_does_not_fit_is_refused_before_writing(tmp_path, monkeypatch):
    "Less free space than the tensors need: one line naming the folder, the need and what is free; nothing written."
    G = tiny_g(); folder = tmp_path/'A'
    save_checkpoint(folder/'ep0001', G, resume_state=resume_state_for(G), meta={'epoch': 1})
    before = sorted(os.listdir(folder))
    monkeypatch.setattr(core, 'free_bytes', lambda f: 500)
    with pytest.raises(CacheError) as e: save_checkpoint(folder/'ep0002', G, resume_state=resume_state_for(G), meta={'epoch': 2})
    one_line(e, f"{folder}: not enough free space (it needs ", ", 500 B free)")
    assert sorted(os.listdir(folder)) == before and resolve_checkpoint(folder).name == 'ep0001'


@pytest.mark.parametrize('where', ['weights', 'resume_state', 'json'])
def test_disk_full_during_save(tmp_path, monkeypatch, where):
    "ENOSPC while writing the weights (a SafetensorError), the resume state (torch.save's RuntimeError) or the JSON:"
    "one line naming the folder and the file, none of the save's files left, `latest` still the last good one."
    G = tiny_g(); folder = tmp_path/'A'
    save_checkpoint(folder/'ep0001', G, resume_state=resume_state_for(G), meta={'epoch': 1})
    before = sorted(os.listdir(folder))
    if where == 'weights':
        def save_file(tensors, filename, metadata=None):
            Path(filename).write_bytes(b'partial')
            raise SafetensorError('Error while serializing: I/O error: No space left on device (os error 28)')
        monkeypatch.setattr(ckmod, 'save_file', save_file)
    elif where == 'resume_state':
        def save(obj, f, *a, **k):
            f.write(b'partial')
            try: raise OSError(errno.ENOSPC, 'No space left on device')
            except OSError: raise RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598')
        monkeypatch.setattr(ckmod.torch, 'save', save)
    else:
        real = ckmod.atomic_write_bytes
        def write(path, data):
            if not str(path).endswith('.json'): return real(path, data)
            with core.atomic_path(path, need=len(data)) as tmp:
                tmp.write_bytes(data[:10]); raise OSError(errno.EDQUOT, 'Disk quota exceeded')
        monkeypatch.setattr(ckmod, 'atomic_write_bytes', write)
    with pytest.raises(CacheError) as e: save_checkpoint(folder/'ep0002', G, resume_state=resume_state_for(G), meta={'epoch': 2})
    name = {'weights': 'ep0002.safetensors', 'resume_state': 'ep0002.state.pt', 'json': 'ep0002.json'}[where]
    reason = 'the disk quota is used up' if where == 'json' else 'the disk is full'
    one_line(e, f"{folder}: cannot write {name}: {reason} (it needs ", " free)")
    assert sorted(os.listdir(folder)) == before
    assert load_checkpoint(folder).path.name == 'ep0001'


def _mount_tmpfs(path:Path, size:str) -> bool:
    "Mount a small tmpfs at `path` (root on Linux only); False where that is not possible."
    if not sys.platform.startswith('linux') or os.geteuid() != 0: return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)], capture_output=True).returncode == 0


def test_real_full_disk(tmp_path, monkeypatch):
    "On a real 1 MB disk: a checkpoint too big is refused up front, and, where the free space is not known, the failing"
    "write itself ends in one line; either way the folder keeps exactly its last good checkpoint."
    disk = tmp_path/'disk'
    if not _mount_tmpfs(disk, '1m'): pytest.skip('cannot mount a tmpfs here (needs root on Linux)')
    try:
        folder = disk/'A'
        save_checkpoint(folder/'ep0001', tiny_g(), meta={'epoch': 1})
        big = tiny_g(ngf=32)                                      # about 2 MB of weights
        with pytest.raises(CacheError) as e: save_checkpoint(folder/'ep0002', big, meta={'epoch': 2})
        one_line(e, f"{folder}: not enough free space (it needs ")
        monkeypatch.setattr(core, 'free_bytes', lambda f: None)   # a file system that does not say: the write fails
        with pytest.raises(CacheError) as e: save_checkpoint(folder/'ep0002', big, meta={'epoch': 2})
        one_line(e, f"{folder}: cannot write ep0002.safetensors: the disk is full (it needs ")
        assert sorted(os.listdir(folder)) == ['ep0001.json', 'ep0001.safetensors', 'latest']
        assert load_checkpoint(folder).path.name == 'ep0001'
    finally:
        subprocess.run(['umount', str(disk)], capture_output=True)


def test_next_save_removes_temps_of_killed_writers_only(tmp_path):
    "Temp files whose writer has ended go; a running writer's, and another machine's, stay."
    G = tiny_g(); folder = tmp_path/'A'
    save_checkpoint(folder/'ep0001', G)
    ended = subprocess.Popen([sys.executable, '-c', '']); ended.wait()
    dead = folder/f'.ep0002.safetensors.{core.HOST}-{ended.pid}.abcd1234.tmp'
    live = folder/f'.ep0002.safetensors.{core.HOST}-{os.getppid()}.abcd1234.tmp'
    elsewhere = folder/f'.ep0002.json.{core.HOST}x-{ended.pid}.abcd1234.tmp'
    for f in (dead, live, elsewhere): f.write_bytes(b'half')
    save_checkpoint(folder/'ep0002', G)
    assert not dead.exists() and live.exists() and elsewhere.exists()
