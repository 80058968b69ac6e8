"""RolloutPanel latency: from a steps-slider (or checkpoint) change to the new preview image.

With the `small` preset at a 256 px preview (untrained checkpoints: speed does not depend on the weights), measures
- stepping back (cache hit), target < 50 ms;
- stepping forward by 1 and by 10 steps, target <= 1.2 x k x the bare generator forward time;
- a checkpoint change (never loaded before) to the first new computed frame, and to all frames;
against the bare forward time (same dtype/autocast as the rollout) measured in the same run.

`--memory` measures instead what the panel's memory holds once the blend slider has moved through 19 values of two
networks with `nets_mb=128, cache_mb=64` (the two bounds): the process's growth against the bounds, the networks
alive (cached, or held only by the paused rollouts that were made with them), and the freed memory glibc keeps
(`mallinfo2`'s free bytes; the resident set after `malloc_trim(0)`); then the same once the paused rollouts are
closed. Linux with glibc for the allocator figures.

    python bench/bench_widgets.py [--quick] [--size 256] [--preset small] [--threads N] [--memory]
"""
import argparse, ctypes, gc, os, statistics, sys, tempfile, time
from pathlib import Path
import numpy as np, torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nfp_nb.checkpoint import save_checkpoint, load_generator
from nfp_nb.data import FrameStore
from nfp_nb.models import build_generator, get_preset
from nfp_nb.core import resolve_dtype
from nfp_nb.core import to_float
from nfp_nb.widgets import RolloutPanel

def wait_shown(panel, i, t0=None, timeout=600):
    "Seconds from `t0` (default: now) until the preview shows frame `i` of the current track."
    t0 = time.perf_counter() if t0 is None else t0
    while not (panel.shown and panel.track is not None and panel.shown == (panel.track.key, i)):
        if time.perf_counter() - t0 > timeout: raise TimeoutError(f"frame {i} not shown")
        time.sleep(0.0005)
    return time.perf_counter() - t0

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='fewer repetitions')
    ap.add_argument('--size', type=int, default=256, help='preview size (short side)')
    ap.add_argument('--preset', default='small')
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    ap.add_argument('--drift', action='store_true', help='keep the drift plot on (it draws in its own thread)')
    ap.add_argument('--memory', action='store_true', help='where the memory goes as the blend slider moves (see above)')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    if a.memory: return memory(a)
    reps = 3 if a.quick else 8
    tmp = Path(tempfile.mkdtemp())
    run = tmp/'bench'
    store = FrameStore.prepare(None, run=run, size=a.size, max_frames=8, progress=False)
    cfg = get_preset(a.preset).generator
    for i in (1, 2, 3):
        torch.manual_seed(i)
        save_checkpoint(run/'A'/f'ep{i:04d}', build_generator(cfg), meta={'epoch': i})
        os.utime(run/'A'/f'ep{i:04d}.json', (1e9 + i, 1e9 + i))

    # bare forward, the way the rollout runs it
    G = load_generator(run/'A'/'ep0003').eval()
    dtype = resolve_dtype('auto', torch.device('cpu'))
    x = to_float(torch.from_numpy(np.array(store[0]))[None])
    def fwd():
        with torch.inference_mode(), torch.autocast('cpu', dtype=dtype, enabled=dtype != torch.float32):
            return G(x).float()
    for _ in range(2): fwd()
    bares = []
    def bare_once():
        t0 = time.perf_counter(); fwd(); bares.append(time.perf_counter() - t0)
    def set_steps(v):
        t0 = time.perf_counter(); panel.steps.value = v; return wait_shown(panel, v, t0)

    panel = RolloutPanel(run, preview_size=a.size, steps=10, max_steps=10_000, drift=a.drift)
    assert panel.wait(600, plot=True), 'first rollout timed out'
    assert panel.error.value == '', panel.error.value
    n = 10
    fwd1, fwd10, back = [], [], []
    for _ in range(reps):                   # bare forwards interleaved with panel steps: same machine load for both
        bare_once(); n += 1; fwd1.append(set_steps(n)); panel.wait(600, plot=True)
    for _ in range(max(2, reps // 2)):
        bare_once(); n += 10; fwd10.append(set_steps(n)); panel.wait(600, plot=True)
    for _ in range(reps):
        back.append(set_steps(n - 5)); set_steps(n); panel.wait(600, plot=True)
    # checkpoint change: ep0001 was never loaded
    set_steps(10); panel.wait(600, plot=True); bare_once()
    t0 = time.perf_counter()
    panel.a.value = str(run/'A'/'ep0001')
    while not (panel.track is not None and len(panel.track) > 1): time.sleep(0.0005)
    first = time.perf_counter() - t0
    all10 = wait_shown(panel, 10, t0)
    panel.close()
    bare = statistics.median(bares)

    ms = lambda v: f"{v * 1000:8.1f} ms"
    m1, m10, mb = statistics.median(fwd1), statistics.median(fwd10), statistics.median(back)
    print(f"bench_widgets: preset {a.preset}, preview {store.size[0]}×{store.size[1]} → rollout {panel.track.frames[0].shape[1]}×{panel.track.frames[0].shape[0]}, "
          f"dtype {str(dtype).replace('torch.', '')}, torch threads {torch.get_num_threads()}, drift plot {'on' if a.drift else 'off'}, reps {reps}")
    print(f"bare generator forward          {ms(bare)}")
    print(f"step back (cache hit)           {ms(mb)}   target < 50 ms: {'ok' if mb < 0.05 else 'MISSED'}")
    print(f"forward by 1                    {ms(m1)}   = {m1 / bare:5.2f} × bare      (target ≤ 1.20): {'ok' if m1 <= 1.2 * bare else 'MISSED'}")
    print(f"forward by 10                   {ms(m10)}   = {m10 / (10 * bare):5.2f} × 10 bare   (target ≤ 1.20): {'ok' if m10 <= 12 * bare else 'MISSED'}")
    print(f"checkpoint change → 1st frame   {ms(first)}   = {first / bare:5.2f} × bare (load + rollout set-up + 1 step)")
    print(f"checkpoint change → 10 frames   {ms(all10)}   = {all10 / (10 * bare):5.2f} × 10 bare")

def _status_mib(key):
    return [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key + ':')][0] / 1024

def _glibc():
    "libc with `mallinfo2` and `malloc_trim` (glibc >= 2.33), else None."
    try:
        libc = ctypes.CDLL(None); libc.mallinfo2, libc.malloc_trim
        return libc
    except (OSError, TypeError, AttributeError): return None

class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks',
                                               'uordblks', 'fordblks', 'keepcost')]

def memory(a):
    "Where the panel's memory goes: 19 blend values of two networks, nets_mb=128 and cache_mb=64."
    from nfp_nb.widgets import _net_bytes
    libc = _glibc()
    if libc is not None: libc.mallinfo2.restype = _MallInfo2
    tmp = Path(tempfile.mkdtemp()); run = tmp/'mem'
    FrameStore.prepare(None, run=run, size=a.size, max_frames=8, progress=False)
    cfg = get_preset(a.preset).generator
    for i in (1, 2):
        torch.manual_seed(i); save_checkpoint(run/'A'/f'ep{i:04d}', build_generator(cfg), meta={'epoch': i})
        os.utime(run/'A'/f'ep{i:04d}.json', (1e9 + i, 1e9 + i))
    panel = RolloutPanel(run, preview_size=a.size, steps=30, nets_mb=128, cache_mb=64, drift=False)
    assert panel.wait(600), 'first rollout timed out'
    cls = type(next(iter(panel._nets.values())))
    def live(): gc.collect(); return [o for o in gc.get_objects() if type(o) is cls]
    base = _status_mib('VmRSS')
    panel.a.value, panel.a2.value = str(run/'A'/'ep0001'), str(run/'A'/'ep0002')
    for b in np.linspace(0.05, 0.95, 19):
        panel.blend.value = round(float(b), 2); assert panel.wait(600), 'rollout timed out'
    grow = lambda: _status_mib('VmRSS') - base
    nets = sum(map(_net_bytes, panel._nets.values())) / 2**20
    frames = sum(t.nbytes for t in panel.tracks.values()) / 2**20
    cached = {id(n) for n in panel._nets.values()}
    outside = [n for n in live() if id(n) not in cached]
    print(f"bench_widgets --memory: preset {a.preset}, preview {a.size} px, 19 blend values of two networks "
          f"({nets / len(panel._nets):.0f} MiB each), nets_mb=128, cache_mb=64, torch threads {torch.get_num_threads()}")
    print(f"  the process grew by               {grow():6.0f} MiB (the bounds allow 128 + 64)")
    print(f"  net cache                         {nets:6.0f} MiB ({len(panel._nets)} networks)")
    print(f"  frames of {len(panel.tracks)} cached rollouts       {frames:6.0f} MiB")
    print(f"  networks held only by the paused rollouts made with them: {len(outside)} = "
          f"{sum(map(_net_bytes, outside)) / 2**20:.0f} MiB (outside nets_mb)")
    del outside
    if libc is not None:
        print(f"  freed memory glibc keeps          {libc.mallinfo2().fordblks / 2**20:6.0f} MiB "
              f"(in {libc.mallinfo2().arena / 2**20:.0f} MiB of arenas)")
        libc.malloc_trim(0)
        print(f"  after malloc_trim(0) the process has grown by {grow():.0f} MiB")
    for t in [t for t in panel.tracks.values() if t is not panel.track]: t.close(join=10)
    outside = [n for n in live() if id(n) not in {id(n) for n in panel._nets.values()}]
    print(f"  paused rollouts closed: {len(outside)} networks outside the cache; grown by {grow():.0f} MiB"
          + (f", after malloc_trim(0) {(libc.malloc_trim(0), grow())[1]:.0f} MiB" if libc is not None else ''))
    panel.close()

if __name__ == '__main__': main()
