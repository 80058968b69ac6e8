"Trainer: exact resume, Ctrl-C, kill -9 during a checkpoint write, NaN guard, torchrun (DDP on CPU), CLI errors."
import contextlib, hashlib, io, os, signal, subprocess, sys, textwrap, shutil
from pathlib import Path
import pytest, torch
import numpy as np

from nfp_nb.core import seed_everything
from nfp_nb.data import FrameStore, PairDataset
from nfp_nb.models import build_generator, build_discriminator, get_preset
from nfp_nb.checkpoint import load_checkpoint
import nfp_nb.train as train_mod
import nfp_nb.cli as cli_mod
from nfp_nb.train import Trainer, TrainConfig
from nfp_nb.cli import train_main

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
torch.set_num_threads(1)   # tiny networks on a shared CPU: one thread is much faster than two fighting

def prep(run, n=12, size=32):
    return FrameStore.prepare(run=run, size=size, max_frames=n, progress=False)

def toy(run, store, **kw):
    seed_everything(0)
    p = get_preset('tiny')
    cfg = TrainConfig(**{'epochs': 2, 'batch_size': 2, 'sample_every': 0, 'save_every': 1, 'deterministic': True, **kw})
    return Trainer(build_generator(p.generator), build_discriminator(p.discriminator), PairDataset(store, skip=(1, 2)),
                   cfg, run, device='cpu')

def same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

def weights_hash(*models):
    h = hashlib.sha256()
    for m in models:
        for k, v in sorted(m.state_dict().items()): h.update(k.encode()); h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()

def cli(*argv):
    "nfp_train in this process: (exit status, trainer or None)."
    try: return 0, train_main([str(a) for a in argv])
    except SystemExit as e: return e.code, None

TINY = ['--preset', 'tiny', '--batch-size', '2', '--deterministic', '--skip', '1', '2']

def test_resume_equals_straight_run(tmp_path):
    "2 epochs straight == 1 epoch + resume + 1 epoch, bit for bit (G, D, optimizers, history)."
    store = prep(tmp_path/'r')
    a = toy(tmp_path/'a', store).fit()
    toy(tmp_path/'b', store).fit(until=1)
    b = toy(tmp_path/'b', store).resume()
    assert (b.epoch, b.step) == (1, a.steps_per_epoch)
    b.fit()
    assert same(a.G, b.G) and same(a.D, b.D)
    assert torch.equal(a.opt_G.state_dict()['state'][0]['exp_avg'], b.opt_G.state_dict()['state'][0]['exp_avg'])
    assert a.history == b.history

def test_ctrl_c_mid_epoch_saves_and_resumes_exactly(tmp_path):
    "A real SIGINT mid-epoch: the step finishes, a checkpoint is saved, KeyboardInterrupt; resume matches a straight run."
    store = prep(tmp_path/'r')
    a = toy(tmp_path/'a', store, epochs=1).fit()
    b = toy(tmp_path/'b', store, epochs=1)
    b._prepare_samples()                        # the fixed sample and fidelity pairs, fetched before counting
    calls = {'n': 0}
    base = b.dataset.__class__.__getitem__
    class Interrupting(b.dataset.__class__):
        def __getitem__(self, i):
            calls['n'] += 1
            if calls['n'] == 5: os.kill(os.getpid(), signal.SIGINT)    # 2 batches of 2, then the 3rd batch
            return base(self, i)
    b.dataset.__class__ = Interrupting
    with pytest.raises(KeyboardInterrupt): b.fit()
    assert b.batch == 2 and b.last_checkpoint.name == 'step00000002'
    c = toy(tmp_path/'b', store, epochs=1).resume()
    assert (c.epoch, c.batch, c.step) == (0, 2, 2)
    c.fit()
    assert same(a.G, c.G) and same(a.D, c.D)

def test_nan_guard_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    "A non-finite loss: exit status 2, one line naming the step, the last checkpoint intact and still `latest`."
    prep(tmp_path/'run')
    calls = {'n': 0}
    real_fm = train_mod.feature_matching_loss
    def fm(*a, **k):
        calls['n'] += 1
        out = real_fm(*a, **k)
        return out * float('nan') if calls['n'] == 8 else out         # epoch 1 has 5 steps
    monkeypatch.setattr(train_mod, 'feature_matching_loss', fm)
    code, _ = cli('--run', tmp_path/'run', '--epochs', '3', *TINY)
    err = capsys.readouterr().err
    assert code == 2 and 'non-finite loss at step 8 (epoch 2)' in err and 'ep0001' in err
    ck = load_checkpoint(tmp_path/'run'/'A'/'latest')
    assert ck.path.name == 'ep0001' and ck.step == 5
    assert not (tmp_path/'run'/'A'/'ep0002.json').exists()

DRIVER = textwrap.dedent('''
    import os, signal, sys, torch
    torch.set_num_threads(1)
    from nfp_nb.cli import train_main
    n = {'saves': 0}
    real_save = torch.save
    def dying_save(obj, f, *a, **k):              # the resume state is the 2nd file of a checkpoint
        n['saves'] += 1
        if n['saves'] == 2:
            fh = f if hasattr(f, 'write') else open(f, 'wb')      # (save_checkpoint hands torch.save an open file)
            fh.write(b'half a checkpoint'); fh.flush(); os.fsync(fh.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *a, **k)
    torch.save = dying_save
    train_main(sys.argv[1:])
''')

def test_kill_9_during_checkpoint_write_then_resume(tmp_path):
    "SIGKILL in the middle of writing the 2nd checkpoint: resume continues from the 1st and ends where a straight run ends."
    run = tmp_path/'run'; prep(run)
    (tmp_path/'driver.py').write_text(DRIVER)
    args = ['--run', str(run), '--epochs', '3', *TINY]
    r = subprocess.run([sys.executable, str(tmp_path/'driver.py'), *args], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert load_checkpoint(run/'A'/'latest').path.name == 'ep0001'      # the half-written ep0002 is not seen
    code, _ = cli(*args, '--resume')                                    # resume (in this process, to save time)
    assert code == 0 and load_checkpoint(run/'A'/'latest').path.name == 'ep0003'
    # the same run uninterrupted, in this process
    straight = tmp_path/'straight'; shutil.copytree(run/'frames', straight/'frames')
    code, tr = cli('--run', straight, '--epochs', '3', *TINY)
    assert code == 0
    resumed = load_checkpoint(run/'A'/'latest')
    assert all(torch.equal(v, resumed.generator[k]) for k, v in tr.G.state_dict().items())
    assert all(torch.equal(v, resumed.discriminator[k]) for k, v in tr.D.state_dict().items())

DDP_DRIVER = textwrap.dedent('''
    import os, sys, hashlib, torch
    torch.set_num_threads(1)
    from nfp_nb.cli import train_main
    tr = train_main(os.environ['NFP_TEST_ARGS'].split('\x1f'))
    h = hashlib.sha256()
    for m in (tr.G, tr.D):
        for k, v in sorted(m.state_dict().items()): h.update(k.encode()); h.update(v.detach().contiguous().numpy().tobytes())
    open(os.path.join(os.environ['NFP_TEST_OUT'], f"rank{os.environ['RANK']}.txt"), 'w').write(f"{h.hexdigest()} {tr.step} {tr.world}")
''')

def test_torchrun_two_processes(tmp_path):
    "torchrun (python -m torch.distributed.run) --nproc_per_node=2 on CPU (gloo): both ranks end with identical weights; rank 0 wrote the checkpoint."
    run = tmp_path/'run'; prep(run)
    (tmp_path/'ddp.py').write_text(DDP_DRIVER)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(tmp_path/'ddp.py')]
    env = {**ENV, 'NFP_TEST_OUT': str(tmp_path), 'NFP_TEST_ARGS': '\x1f'.join(['--run', str(run), '--steps', '3', *TINY])}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-3000:]
    h0, h1 = (tmp_path/'rank0.txt').read_text().split(), (tmp_path/'rank1.txt').read_text().split()
    assert h0 == h1 and h0[1:] == ['3', '2']
    ck = load_checkpoint(run/'A'/'latest')
    assert ck.step == 3 and ck.meta['world_size'] == 2

def test_cli_bad_input_one_line_exit_2(tmp_path):
    "No frames, an unknown preset, a batch larger than the dataset, --resume with nothing to resume: one line, status 2."
    (tmp_path/'empty'/'frames').mkdir(parents=True)
    run = tmp_path/'run'; prep(run, n=6)
    cases = [(['--run', tmp_path/'empty', '--preset', 'tiny'], 'frames'),
             (['--run', run, '--preset', 'huge'], "unknown preset 'huge'"),
             (['--run', run, '--preset', 'tiny', '--batch-size', '64'], 'fewer than the batch size 64'),
             (['--run', run, '--preset', 'tiny', '--resume'], 'no checkpoint'),
             (['--run', run, '--preset', 'tiny', '--skip', '3', '1'], 'skip=(3, 1)')]
    for argv, msg in cases[1:]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err): r_code, _ = cli(*argv)
        assert r_code == 2 and msg in err.getvalue() and err.getvalue().strip().count('\n') == 0, (argv, err.getvalue())
    # one through a real process, for the exit status and the single line on stderr
    r = subprocess.run([sys.executable, '-m', 'nfp_nb.cli', 'train', *map(str, cases[0][0])], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count('\n') == 0 and cases[0][1] in r.stderr, r.stderr

def test_steps_mode_and_schedule(tmp_path):
    "--steps stops mid-epoch with a step-named checkpoint; the LR decays linearly to the end; samples are written."
    prep(tmp_path/'run')
    code, tr = cli('--run', tmp_path/'run', '--steps', '7', '--sample-every', '1', *TINY)
    assert code == 0 and tr.step == 7 and tr.epoch == 1 and tr.batch == 2
    assert load_checkpoint(tmp_path/'run'/'A'/'latest').path.name == 'step00000007'
    lrs = [tr.lr_at(0, s) for s in range(7)]
    assert lrs[:4] == [2e-4] * 4 and lrs[4] > lrs[5] > lrs[6] > 0
    assert sorted(p.name for p in (tmp_path/'run'/'A'/'samples').iterdir()) == ['ep0001.png', 'step00000007.png']

def test_documented_torchrun_line_parses(tmp_path):
    "The launch line the docs give (`torchrun ... -m nfp_nb.cli -- train --run ...`) reaches nfp_train's own parser."
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=1',
           '-m', 'nfp_nb.cli', '--', 'train', '--run', str(tmp_path/'run'), '--net', 'B', '--n', '1', '3', '--m', '1', '3', '--help']
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and 'usage: nfp_train' in r.stdout, r.stdout[-1000:] + r.stderr[-2000:]

def test_b_defaults_to_its_predictors_preset(tmp_path):
    "`nfp_train --net B` without --preset builds B with the preset A was trained with."
    run = tmp_path/'run'; prep(run)
    assert cli('--run', run, '--net', 'A', '--steps', '2', *TINY)[0] in (0, None)
    code, tr = cli('--run', run, '--net', 'B', '--steps', '1', '--n', '1', '2', '--m', '1', '2', *[a for a in TINY if a not in ('--preset', 'tiny')])
    assert load_checkpoint(run/'B'/'latest').meta['preset'] == 'tiny'

def test_run_training_raises_catchable_errors(tmp_path, capsys):
    "From Python, `run_training` raises `NFPError`; only the console script turns it into one line and exit 2."
    from nfp_nb.cli import run_training
    from nfp_nb.core import NFPError
    prep(tmp_path/'run')
    with pytest.raises(NFPError, match="--net: invalid choice: 'C'"): run_training(['--run', str(tmp_path/'run'), '--net', 'C'])
    with pytest.raises(SystemExit) as e: cli_mod.train_main(['--run', str(tmp_path/'run'), '--net', 'C'])
    assert e.value.code == 2 and capsys.readouterr().err.count('\n') == 1

def test_piped_output_is_plain_lines(tmp_path):
    "Stdout that is not a terminal gets plain epoch lines, not progress-bar redraws."
    import subprocess, sys
    prep(tmp_path/'run')
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, '-m', 'nfp_nb.cli', 'train', '--run', str(tmp_path/'run'), *TINY, '--epochs', '2'],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert '█' not in r.stdout and '\r' not in r.stdout, r.stdout[:300]
    epoch_lines = [l for l in r.stdout.splitlines() if l.startswith('epoch ')]
    assert [l.split()[1] for l in epoch_lines] == ['1/2', '2/2'] and 'nan' not in r.stdout, r.stdout

# --- issue 15: no stand-in frames, torchrun from nfp_train, world-size checks, pruning, the last line ---------
def test_run_without_frames_is_refused_before_any_work(tmp_path, capsys):
    "A typo in the run folder must not train on the sample video: one line naming nfp_prep, exit 2, nothing written."
    code, _ = cli('--run', tmp_path/'typo', '--net', 'A', '--preset', 'tiny')
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1 and f'nfp_prep --run {tmp_path/"typo"}' in err and 'nfp_prep VIDEO' in err
    assert not (tmp_path/'typo').exists()

def test_torchrun_command_keeps_the_users_flags():
    args = cli_mod.train_parser().parse_args(['--run', 'R', '--nproc-per-node', '2', '--steps', '5'])
    cmd = cli_mod.torchrun_command(['--run', 'R', '--nproc-per-node', '2', '--steps', '5', '--nnodes=1'], args)
    i = cmd.index('nfp_nb.cli')
    assert cmd[i + 1:] == ['--', 'train', '--run', 'R', '--steps', '5'] and '--nproc-per-node=2' in cmd and '--standalone' in cmd
    args = cli_mod.train_parser().parse_args(['--run', 'R', '--nproc-per-node', '4', '--nnodes', '2', '--node-rank', '1',
                                              '--rdzv-endpoint', 'host:29400'])
    cmd = cli_mod.torchrun_command([], args)
    assert '--rdzv-endpoint=host:29400' in cmd and '--node-rank=1' in cmd and '--standalone' not in cmd
    for bad, msg in ((['--nnodes', '2'], 'rdzv-endpoint'), (['--nproc-per-node', '0'], 'at least 1'),
                     (['--nnodes', '2', '--node-rank', '2', '--rdzv-endpoint', 'h:1'], '0..1')):
        with pytest.raises(cli_mod.ConfigError, match=msg): cli_mod._check_launch(cli_mod.train_parser().parse_args(['--run', 'R', *bad]))

def test_nproc_per_node_launches_torchrun_and_resume_checks_the_world(tmp_path):
    "`nfp_train --nproc-per-node 2` (the natural line) trains in two processes; a mid-epoch resume by one process is refused."
    run = tmp_path/'run'; prep(run, n=24)
    base = [sys.executable, '-c', 'from nfp_nb.cli import train_main; train_main()', '--run', str(run), *TINY]
    r = subprocess.run(base + ['--steps', '3', '--nproc-per-node', '2'], env=ENV, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-3000:]
    ck = load_checkpoint(run/'A'/'latest')
    assert ck.meta['world_size'] == 2 and ck.step == 3 and ck.resume_state['batch'] == 3
    last = [l for l in r.stdout.splitlines() if l.startswith('epoch ')][-1]
    assert 'nan' not in last and 'lr 0.00e+00' not in last, last                  # the real last losses and LR
    r = subprocess.run(base + ['--steps', '5', '--resume'], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'saved mid-epoch (batch 3) by 2 process(es)' in r.stderr and r.stderr.count('\n') == 1, r.stderr

def test_keep_prunes_old_checkpoints(tmp_path):
    store = prep(tmp_path/'r')
    tr = toy(tmp_path/'r', store, epochs=4, keep=2).fit(show=False)
    names = sorted(p.name[:-5] for p in (tmp_path/'r'/'A').glob('*.json'))
    assert names == ['ep0003', 'ep0004'] and load_checkpoint(tmp_path/'r'/'A'/'latest').path.name == 'ep0004'
    with pytest.raises(train_mod.ConfigError, match='keep=-1'): TrainConfig(keep=-1)

def test_a_stop_between_log_points_logs_its_losses(tmp_path):
    "--steps ending before the first log point: the history (and the final line) holds the real losses, not NaN."
    store = prep(tmp_path/'r', n=24)
    tr = toy(tmp_path/'r', store, steps=2, log_every=50).fit(show=False)
    h = tr.history[-1]
    assert h['step'] == 2 and all(np.isfinite(h[k]) for k in ('G', 'D', 'FM')) and h['lr'] > 0
    assert 'nan' not in tr._epoch_line(0, 0)

def test_every_config_field_is_a_flag_and_resume_keeps_them(tmp_path, capsys):
    "Generated flags (GeneratorConfig, DiscriminatorConfig, TrainConfig) reach the networks; --resume keeps the saved configs."
    run = tmp_path/'run'; prep(run)
    code, tr = cli('--run', run, '--steps', '2', *TINY, '--ngf', '4', '--n-blocks', '1', '--upsample', 'resize',
                   '--d-ndf', '8', '--d-num-D', '1', '--lambda-l1', '2', '--gan-mode', 'hinge')
    assert code == 0
    ck = load_checkpoint(run/'A'/'latest')
    g, d = ck.generator_config, ck.discriminator_config
    assert (g.ngf, g.n_blocks, g.upsample, g.n_downsampling) == (4, 1, 'resize', get_preset('tiny').generator.n_downsampling)
    assert (d.ndf, d.num_D) == (8, 1) and ck.meta['train']['lambda_l1'] == 2 and ck.meta['train']['gan_mode'] == 'hinge'
    code, tr = cli('--run', run, '--steps', '4', *TINY, '--resume')          # no flags again: the checkpoint's configs
    assert code == 0 and tr.G.cfg.ngf == 4 and tr.cfg.gan_mode == 'hinge'
    code, _ = cli('--run', run, '--steps', '6', *TINY, '--resume', '--ngf', '8')
    assert code == 2 and 'ngf=4 (now 8)' in capsys.readouterr().err
    assert "width of the first layer" in ' '.join(cli_mod.train_parser().format_help().split())

def test_local_enhancer_workflow(tmp_path, capsys):
    "pix2pixHD's progressive training: a global generator at half size, then --arch local --load-global --niter-fix-global."
    g, l = tmp_path/'g', tmp_path/'l'
    prep(g, n=12, size=16); prep(l, n=12, size=32)
    assert cli('--run', g, '--steps', '2', *TINY)[0] == 0
    code, tr = cli('--run', l, '--epochs', '2', *TINY, '--arch', 'local', '--load-global', g/'A'/'latest',
                   '--niter-fix-global', '1', '--crop-size', '16')
    assert code == 0 and type(tr.G).__name__ == 'LocalEnhancer'
    glob_w = load_checkpoint(g/'A'/'latest').generator['front.1.weight']
    first = load_checkpoint(l/'A'/'ep0001')
    assert torch.equal(first.generator['global_net.front.1.weight'], glob_w)     # loaded, then frozen for epoch 1
    assert not torch.equal(tr.G.global_net.front[1].weight, glob_w)              # trained in epoch 2
    assert first.meta['load_global'] == str(g/'A'/'latest') and first.meta['crop_size'] == 16
    code, _ = cli('--run', l, '--steps', '1', *TINY, '--load-global', g/'A'/'latest')
    assert code == 2 and '--arch local' in capsys.readouterr().err
    code, _ = cli('--run', l, '--steps', '1', *TINY, '--arch', 'local', '--load-global', l/'A'/'latest')
    assert code == 2 and "needs a global generator" in capsys.readouterr().err

def test_fp16_trains_with_loss_scaling_and_resumes(tmp_path):
    "amp='fp16' (older GPUs' choice, exercised here on the CPU): a GradScaler, finite losses, its state in the resume state."
    store = prep(tmp_path/'r')
    tr = toy(tmp_path/'r', store, epochs=1, amp='fp16').fit(show=False)
    assert tr.amp_dtype == torch.float16 and tr.scaler is not None
    assert all(np.isfinite(h[k]) for h in tr.history for k in ('G', 'D', 'FM'))
    ck = load_checkpoint(tmp_path/'r'/'A'/'latest')
    assert ck.resume_state['scaler']['scale'] > 0
    tr2 = toy(tmp_path/'r', store, epochs=2, amp='fp16').resume()
    assert tr2.scaler.get_scale() == ck.resume_state['scaler']['scale']
    assert toy(tmp_path/'x', store, amp='off').scaler is None
    from nfp_nb.core import resolve_dtype
    assert resolve_dtype('auto', 'cpu') in (torch.bfloat16, torch.float32)     # a CPU never picks fp16 by itself

def test_holdout_keeps_frames_out_of_training_and_measures_fidelity_on_them(tmp_path, capsys):
    "--holdout N: no training pair touches the last N frames; the one-step fidelity is measured on pairs among them."
    run = tmp_path/'run'; prep(run, n=24)
    code, tr = cli('--run', run, '--steps', '2', *TINY, '--holdout', '6')
    assert code == 0
    assert max(tr.dataset.index) + 2 < 18 and len(tr.dataset) == 18 - 2          # skip up to 2: pairs end before frame 18
    assert all(t >= 18 for t in tr._fid_batch['t'].tolist())
    assert tr.fidelity[-1]['heldout'] and load_checkpoint(run/'A'/'latest').meta['holdout'] == 6
    code, _ = cli('--run', run, '--steps', '2', *TINY, '--holdout', '23')
    assert code == 2 and 'holdout=23' in capsys.readouterr().err

# --- issue 24: the natural torchrun line, a full disk ---------------------------------------------------------
BIN = Path(sys.executable).parent

def test_every_option_has_a_spelling_torchrun_lets_through():
    "torchrun reads the options after the script's name as well: each of nfp_train's needs one spelling it does not claim."
    from torch.distributed.run import get_args_parser
    tr = get_args_parser()
    def passes(opt):
        try: tr.parse_args(['nfp_train', opt]); return True
        except SystemExit: return False
    actions = cli_mod.train_parser()._actions
    positional = {a.dest for a in actions if not a.option_strings}          # RUN: its --run alias may be blocked
    with contextlib.redirect_stderr(io.StringIO()):
        blocked = [a.option_strings for a in actions if a.option_strings and a.dest not in positional
                   and not any(passes(o) for o in a.option_strings)]
    assert blocked == [], blocked
    assert not passes('--run')                                               # (why RUN comes first under torchrun)
    args = cli_mod.train_parser().parse_args(['R', '--net', 'B', '--n-range', '1', '3', '--m-range', '2', '4'])
    assert (args.run, args.n, args.m) == ('R', [1, 3], [2, 4])

@pytest.mark.skipif(not (BIN/'torchrun').exists() or not (BIN/'nfp_train').exists(), reason='needs the torchrun and nfp_train scripts')
def test_natural_torchrun_line(tmp_path):
    "`torchrun --nproc_per_node=2 $(which nfp_train) RUN --net A ...` trains in two processes (gloo), rank 0 writes."
    run = tmp_path/'run'; prep(run)
    cmd = [str(BIN/'torchrun'), '--standalone', '--nproc_per_node=2', str(BIN/'nfp_train'), str(run), '--net', 'A',
           '--steps', '3', *TINY, '--quiet']
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-3000:]
    ck = load_checkpoint(run/'A'/'latest')
    assert ck.step == 3 and ck.meta['world_size'] == 2
    assert not (run/'A'/'.nfp.lock').exists()                       # released at the end

def test_disk_full_during_training_is_one_line(tmp_path, monkeypatch, capsys):
    "The 2nd checkpoint hits a full disk: exit 2, one line naming the folder and the sizes; `latest` stays the 1st, no temp left."
    from safetensors import SafetensorError
    import nfp_nb.checkpoint as ckmod
    run = tmp_path/'run'; prep(run)
    real, calls = ckmod.save_file, []
    def save_file(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 2: raise SafetensorError('Error while serializing: I/O error: No space left on device (os error 28)')
        return real(tensors, filename, metadata=metadata)
    monkeypatch.setattr(ckmod, 'save_file', save_file)
    code, _ = cli(run, '--epochs', '3', *TINY)
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1, err
    assert f"nfp_train: error: {run/'A'}: cannot write ep0002.safetensors: the disk is full (it needs " in err and ' free)' in err
    assert load_checkpoint(run/'A'/'latest').path.name == 'ep0001'
    assert not [f for f in os.listdir(run/'A') if f.startswith('.')]     # no temp file, and the lock released

def test_warning_when_the_checkpoints_will_not_fit(tmp_path, monkeypatch, capsys):
    "At the start, the checkpoints the run will write are compared with the free space; too little: a warning, training goes on."
    run = tmp_path/'run'; prep(run)
    monkeypatch.setattr(train_mod, 'free_bytes', lambda folder: 200_000)
    code, tr = cli(run, '--epochs', '3', *TINY, '--quiet')
    err = capsys.readouterr().err
    assert code == 0 and tr.step > 0, err
    one = tr.checkpoint_bytes()
    assert f"warning: {run/'A'}: the rest of this run writes 3 checkpoint(s) of {train_mod.human_bytes(one)}" in err, err
    assert 'keep fewer (--keep N)' in err and 3 * one > 200_000
    code, tr = cli(run, '--epochs', '3', *TINY, '--quiet', '--resume')      # nothing left to write: no warning
    assert 'warning' not in capsys.readouterr().err
