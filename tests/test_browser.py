"""The widget panels in a real browser: JupyterLab (headless, 127.0.0.1, token) driven by Debian's Chromium via playwright.

Run alone with `pytest -m browser tests/test_browser.py`. Needs `/usr/bin/chromium` (`apt-get install chromium`;
never `playwright install`) and the `playwright` Python package; skips with the reason otherwise.
Screenshots of the panels go to `test-artifacts/` (gitignored); the widgets notebook shows copies of them.
"""
import json, os, secrets, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path('/usr/bin/chromium')
ARTIFACTS = ROOT/'test-artifacts'
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync']

pytestmark = pytest.mark.browser
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run the browser tests",
                allow_module_level=True)
sync_api = pytest.importorskip('playwright.sync_api', reason="the playwright Python package is not installed (pip install playwright)")

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _make_run(run: Path):
    "A tiny trained run: 48 sample frames at 64 px, three checkpoints of A (24 steps) and one of B (8 steps)."
    code = f"""
import torch; torch.set_num_threads(1)
from nfp_nb.data import FrameStore, PairDataset
from nfp_nb.models import build_generator, build_discriminator, get_preset
from nfp_nb.train import Trainer, TrainConfig
store = FrameStore.prepare(None, run={str(run)!r}, size=64, max_frames=48, progress=False)
p = get_preset('tiny')
for net, steps in (('A', 24), ('B', 8)):
    torch.manual_seed(0)
    Trainer(build_generator(p.generator), build_discriminator(p.discriminator), PairDataset(store),
            TrainConfig(steps=steps, batch_size=2, log_every=2, save_every_steps=8, amp='off', lr=1e-3),
            run_dir={str(run)!r}, net=net, device='cpu').fit()
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])})
    assert r.returncode == 0, r.stderr[-3000:]

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "JupyterLab serving a temporary folder with the fixture notebook and a tiny run; stopped (with its kernels) afterwards."
    root = tmp_path_factory.mktemp('lab')
    cfg = tmp_path_factory.mktemp('labcfg')
    shutil.copy(ROOT/'tests'/'browser_panel.ipynb', root/'panel.ipynb')
    # user settings: no "receive Jupyter news?" pop-up, no update check
    sd = cfg/'settings'/'@jupyterlab'/'apputils-extension'; sd.mkdir(parents=True)
    (sd/'notification.jupyterlab-settings').write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    env = {k: v for k, v in os.environ.items() if k != 'MPLBACKEND'}
    env.update(JUPYTERLAB_SETTINGS_DIR=str(cfg/'settings'), JUPYTERLAB_WORKSPACES_DIR=str(cfg/'workspaces'),
               JUPYTER_RUNTIME_DIR=str(cfg/'runtime'), PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    port, token = _free_port(), secrets.token_hex(16)
    log = open(cfg/'server.log', 'w')
    srv = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
                            f'--ServerApp.token={token}', '--ServerApp.open_browser=False', f'--ServerApp.root_dir={root}',
                            '--LabApp.expose_app_in_browser=True', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
                            '--allow-root'], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _make_run(root/'run')                      # while the server starts
        t0 = time.monotonic()
        while True:
            try: urllib.request.urlopen(f'http://127.0.0.1:{port}/api/status?token={token}', timeout=2); break
            except OSError:
                if srv.poll() is not None or time.monotonic() - t0 > 60:
                    pytest.fail(f"JupyterLab did not start:\n{(cfg/'server.log').read_text()[-3000:]}")
                time.sleep(0.25)
        yield f'http://127.0.0.1:{port}', token, root
    finally:
        try: os.killpg(srv.pid, signal.SIGTERM)    # the server and any kernel in its session
        except ProcessLookupError: pass
        try: srv.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(srv.pid, signal.SIGKILL); srv.wait(5)
        log.close()

@pytest.fixture(scope='module')
def page(lab):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            pg = browser.new_page(viewport={'width': 1400, 'height': 1200})
            yield pg
        finally: browser.close()

_KERNEL_IDLE = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && !document.querySelector('.jp-Dialog'); }"""

DONE = '.nfp-panel .nfp-status:has-text("frame {0} / {0}"):not(:has-text("computing"))'   # the rollout is complete

def _src(pg, sel): return pg.get_attribute(f'{sel}', 'src')

def _wait_src_change(pg, sel, old, timeout=30_000):
    pg.wait_for_function("([s, o]) => { const e = document.querySelector(s); return e && e.src && e.src !== o; }",
                         arg=[sel, old], timeout=timeout)

@pytest.fixture(autouse=True)
def page_screenshot(request, page):
    "A full-page screenshot in test-artifacts/ after each browser test (what it saw when it failed)."
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    try: page.screenshot(path=str(ARTIFACTS/f'page-{request.node.name}.png'), full_page=True)
    except Exception: pass

_DRAWN = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i+1] < 200 || d[i+2] < 200) n++; return n; }"""
def _drawn(pg, sel, timeout=10):
    "Number of non-white pixels of the canvas `sel`, waiting up to `timeout` s for some to appear."
    t0 = time.monotonic()
    while True:
        n = pg.eval_on_selector(sel, _DRAWN)
        if n > 200 or time.monotonic() - t0 > timeout: return n
        pg.wait_for_timeout(100)

def _shot(pg, sel, name):
    ARTIFACTS.mkdir(exist_ok=True)
    pg.locator(sel).first.screenshot(path=str(ARTIFACTS/name))

@pytest.fixture(scope='module')
def notebook(page, lab):
    "The fixture notebook opened in JupyterLab with all cells run and the panel's first preview shown."
    url, token, root = lab
    page.goto(f'{url}/lab/tree/panel.ipynb?reset&token={token}')
    page.wait_for_function(_KERNEL_IDLE, timeout=60_000)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_selector('.nfp-panel .nfp-preview[src^="blob:"]', timeout=60_000)
    page.wait_for_selector(DONE.format(12), timeout=60_000)
    return page

def test_steps_slider_checkpoint_dropdown_and_plot(notebook):
    pg = notebook
    pg.wait_for_selector('.nfp-drift canvas', timeout=30_000)      # the ipympl figure
    pg.locator('.nfp-panel').first.scroll_into_view_if_needed()
    src = _src(pg, '.nfp-panel .nfp-preview')
    pg.focus('.nfp-panel .nfp-steps .noUi-handle')
    for _ in range(3): pg.keyboard.press('ArrowRight')
    _wait_src_change(pg, '.nfp-panel .nfp-preview', src)
    pg.wait_for_selector(DONE.format(15), timeout=30_000)
    assert pg.inner_text('.nfp-panel .nfp-steps .widget-readout').strip() == '15'
    # another checkpoint: a new rollout in the background, then a new preview
    sel = '.nfp-panel .nfp-ckpt-a select'
    labels = pg.eval_on_selector(sel, 'e => Array.from(e.options).map(o => o.text)')
    assert labels[0].startswith('run/B/') or labels[0].startswith('run/A/'), labels
    current = pg.eval_on_selector(sel, 'e => e.options[e.selectedIndex].text')
    other = [l for l in labels if l.startswith('run/A/') and l != current][-1]     # the oldest: a visibly different network
    src = _src(pg, '.nfp-panel .nfp-preview')
    pg.select_option(sel, label=other)
    _wait_src_change(pg, '.nfp-panel .nfp-preview', src)
    pg.wait_for_selector(DONE.format(15), timeout=30_000)
    assert pg.inner_text('.nfp-panel .nfp-error').strip() == ''
    # the drift plot: an ipympl canvas with pixels on it
    box = pg.locator('.nfp-drift canvas').first.bounding_box()
    assert box and box['width'] > 100 and box['height'] > 50
    pg.wait_for_timeout(500)                                    # let the plot thread's last redraw arrive
    assert _drawn(pg, '.nfp-drift canvas') > 200
    _shot(pg, '.nfp-panel', 'widgets_panel.png')
    _shot(pg, '.nfp-drift', 'widgets_drift.png')

def test_frames_viewer_and_monitor_render(notebook):
    pg = notebook
    v = pg.locator('.nfp-frames-viewer').first
    v.scroll_into_view_if_needed()
    src = _src(pg, '.nfp-frames-viewer .nfp-preview')
    pg.focus('.nfp-frames-viewer .nfp-frame .noUi-handle')
    for _ in range(5): pg.keyboard.press('ArrowRight')
    _wait_src_change(pg, '.nfp-frames-viewer .nfp-preview', src)
    pg.wait_for_selector('.nfp-frames-viewer .nfp-info:has-text("frame 5 / 47")', timeout=10_000)
    _shot(pg, '.nfp-frames-viewer', 'widgets_frames.png')
    m = pg.locator('.nfp-monitor').first
    m.scroll_into_view_if_needed()
    pg.wait_for_selector('.nfp-monitor .nfp-samples[src^="blob:"]', timeout=30_000)
    pg.wait_for_selector('.nfp-monitor .nfp-losses canvas', timeout=30_000)
    assert _drawn(pg, '.nfp-monitor .nfp-losses canvas') > 200
    status = pg.inner_text('.nfp-monitor .nfp-monitor-status')
    assert status.startswith('step 2') and ' G ' in status and ' FM ' in status, status
    pg.wait_for_timeout(300)
    _shot(pg, '.nfp-monitor', 'widgets_monitor.png')
