"""RolloutPanel latency: from a steps-slider (or checkpoint) change to the new preview image.

With the `small` preset at a 256 px preview (untrained checkpoints: speed does not depend on the weights), measures
- stepping back (cache hit), target < 50 ms;
- stepping forward by 1 and by 10 steps, target <= 1.2 x k x the bare generator forward time;
- a checkpoint change (never loaded before) to the first new computed frame, and to all frames;
against the bare forward time (same dtype/autocast as the rollout) measured in the same run.

    python bench/bench_widgets.py [--quick] [--size 256] [--preset small] [--threads N]
"""
import argparse, os, statistics, sys, tempfile, time
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
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
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

if __name__ == '__main__': main()
