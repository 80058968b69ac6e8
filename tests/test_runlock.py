"One writer per run folder, with real processes: a second nfp_train is refused in one line, a killed writer's lock and"
"temp files are taken over and removed, torchrun ranks stop together, and nfp_prep locks the frame cache."
import os, re, sys, json, time, signal, socket, subprocess
from pathlib import Path
import pytest

from nfp_nb.core import HOST, LOCK_NAME, RunLockError, run_lock, process_alive
from nfp_nb.data import FrameStore
from nfp_nb.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(sys.platform == 'win32', reason='POSIX processes and signals')

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
TINY = ['--preset', 'tiny', '--batch-size', '2', '--skip', '1', '2', '--sample-every', '0', '--quiet']
TRAIN = [sys.executable, '-m', 'nfp_nb.cli', 'train']

def wait_for(cond, timeout=120, proc=None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond(): return True
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the first writer ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.1)
    raise AssertionError('timed out')

def kill(p):
    if p.poll() is None: p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)

@pytest.fixture(scope='module')
def frames(tmp_path_factory):
    run = tmp_path_factory.mktemp('frames')/'run'
    FrameStore.prepare(run=run, size=16, max_frames=24, progress=False)
    return run/'frames'

def new_run(tmp_path, frames):
    run = tmp_path/'run'; (run/'frames').mkdir(parents=True)
    for f in frames.iterdir():
        if not f.name.startswith('.'): os.link(f, run/'frames'/f.name)
    return run


def test_second_trainer_is_refused_in_one_line_and_a_killed_ones_lock_is_taken_over(tmp_path, frames):
    run = new_run(tmp_path, frames); lock = run/'A'/LOCK_NAME
    first = subprocess.Popen(TRAIN + [str(run), '--net', 'A', '--steps', '100000', *TINY], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: lock.exists() and json.loads(lock.read_text() or '{}').get('pid') == first.pid, proc=first)
        second = subprocess.run(TRAIN + [str(run), '--net', 'A', '--steps', '2', *TINY], env=ENV, capture_output=True,
                                text=True, timeout=120)
        assert first.poll() is None                                     # the first is still training
        err = second.stderr
        assert second.returncode == 2 and err.count('\n') == 1, err
        assert re.fullmatch(rf"nfp_train: error: {re.escape(str(run.resolve()/'A'))}: in use by nfp_train --net A "
                            rf"\(pid {first.pid} on {re.escape(HOST)} since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\); "
                            rf"wait for it to finish or stop it\n", err), err
        # B of the same run is another folder: a second writer there is fine (here: refused only for a missing A checkpoint)
        other = subprocess.run(TRAIN + [str(run), '--net', 'B', '--steps', '1', *TINY], env=ENV, capture_output=True, text=True, timeout=120)
        assert 'in use by' not in other.stderr
    finally:
        kill(first)                                                     # kill -9: the lock file stays behind, naming it
    assert lock.exists() and not process_alive(first.pid)
    third = subprocess.run(TRAIN + [str(run), '--net', 'A', '--steps', '2', *TINY], env=ENV, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    assert f"note: {run.resolve()/'A'}: taking over the lock of nfp_train --net A (pid {first.pid} on {HOST}" in third.stderr
    assert load_checkpoint(run/'A').step == 2 and not lock.exists()


def test_torchrun_ranks_all_stop_when_the_folder_is_taken(tmp_path, frames):
    "Under torchrun rank 0 asks for the lock; refused, every rank stops with the same line (none waits forever)."
    run = new_run(tmp_path, frames)
    holder = subprocess.Popen([sys.executable, '-c', 'import sys, time\nfrom nfp_nb.core import run_lock\n'
                               'with run_lock(sys.argv[1], "a test holding it"):\n print("held", flush=True); time.sleep(600)',
                               str(run/'A')], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                            str(BIN/'nfp_train'), str(run), '--net', 'A', '--steps', '2', *TINY],
                           env=ENV, capture_output=True, text=True, timeout=240)
    finally:
        kill(holder)
    assert r.returncode != 0
    # two ranks write to one pipe at once, so their lines may run together: count the messages, not the lines
    msgs = r.stderr.split('nfp_train: error:')[1:]
    assert len(msgs) == 2 and all(f" in use by a test holding it (pid {holder.pid} on {HOST}" in m for m in msgs), r.stderr[-3000:]
    assert not (run/'A'/'latest').exists()


def test_nfp_prep_killed_mid_write_leaves_nothing_the_next_prep_keeps(tmp_path):
    "kill -9 while nfp_prep writes: its temp file and its lock stay; the next nfp_prep takes the lock over and removes the temp."
    run = tmp_path/'run'; folder = run/'frames'
    temps = lambda: [f for f in (folder.iterdir() if folder.exists() else []) if f.name.endswith('.tmp')]
    p = subprocess.Popen([str(BIN/'nfp_prep'), '--run', str(run), '--size', '64', '--max-frames', '3000', '--quiet'], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: temps() and temps()[0].stat().st_size > 100_000, proc=p)
    finally:
        kill(p)
    left = temps()
    assert len(left) == 1 and left[0].name.startswith(f'.frames.npy.{HOST}-{p.pid}.') and (folder/LOCK_NAME).exists()
    r = subprocess.run([str(BIN/'nfp_prep'), '--run', str(run), '--size', '16', '--max-frames', '12', '--quiet'], env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"taking over the lock of preparing frames from sample video (seed 0) (pid {p.pid}" in r.stderr
    assert sorted(f.name for f in folder.iterdir()) == ['frames.json', 'frames.npy']


def test_prepare_refused_while_another_process_writes_the_cache(tmp_path):
    "FrameStore.prepare (nfp_prep, nfp_demo) while another process holds the frames folder: RunLockError, nothing written."
    run = tmp_path/'run'
    holder = subprocess.Popen([sys.executable, '-c', 'import sys, time\nfrom nfp_nb.core import run_lock\n'
                               'with run_lock(sys.argv[1], "nfp_prep"):\n print("held", flush=True); time.sleep(600)',
                               str(run/'frames')], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(RunLockError, match=rf"in use by nfp_prep \(pid {holder.pid} on "):
            FrameStore.prepare(run=run, size=16, max_frames=12, progress=False)
        assert sorted(f.name for f in (run/'frames').iterdir()) == [LOCK_NAME]
    finally:
        kill(holder)
    FrameStore.prepare(run=run, size=16, max_frames=12, progress=False)   # its holder gone: taken over
    assert sorted(f.name for f in (run/'frames').iterdir()) == ['frames.json', 'frames.npy']


def test_lock_without_kernel_locks_goes_by_the_pid(tmp_path, monkeypatch):
    "Where the file system has no locks, a live holder of this machine is respected and one of another machine too."
    import nfp_nb.core as core
    monkeypatch.setattr(core, 'fcntl', None)
    folder = tmp_path/'A'; folder.mkdir()
    for host in (HOST, 'another-machine'):
        (folder/LOCK_NAME).write_text(json.dumps(dict(pid=os.getppid(), host=host, since='2025-01-01 00:00:00', what='training A')))
        with pytest.raises(RunLockError, match=rf"in use by training A \(pid {os.getppid()} on {host} since .*; if it is not running, remove "):
            with run_lock(folder, 'training A'): pass
    (folder/LOCK_NAME).unlink()
    with run_lock(folder, 'training A') as me: assert me['pid'] == os.getpid()
