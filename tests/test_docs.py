"""The docs site without Quarto: nbdev's processing step, then nbconvert to HTML.

Quarto cannot be installed everywhere, so this test does what `nbdev_docs` does up to Quarto's
rendering: `nbdev.serve.proc_nbs()` (runs the `show_doc` and import cells, applies the directives),
then renders each processed notebook to HTML with nbconvert and checks the pages hold what a reader
needs: every API page a documentation entry for each public function and class of its module, every
tutorial its images.
"""
import importlib, json, re, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def _module_of(nb):
    for c in json.loads(nb.read_text())['cells']:
        m = re.search(r'^#\|\s*default_exp\s+(\S+)', ''.join(c['source']), re.M)
        if m: return m.group(1)

@pytest.fixture(scope='module')
def html_pages(tmp_path_factory):
    out = tmp_path_factory.mktemp('html')
    r = subprocess.run([sys.executable, '-c', 'import nbdev.serve; nbdev.serve.proc_nbs(force=True)'],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    proc = ROOT/'_proc'
    pages = {}
    for nb in sorted(proc.rglob('*.ipynb')):
        d = json.loads(nb.read_text())
        for c in d['cells']:   # nbdev adds fields that nbformat's validator rejects
            for k in list(c):
                if k not in ('cell_type', 'source', 'metadata', 'outputs', 'execution_count', 'attachments', 'id'): del c[k]
        clean = out/nb.relative_to(proc)
        clean.parent.mkdir(parents=True, exist_ok=True)
        clean.write_text(json.dumps(d))
        r = subprocess.run([sys.executable, '-m', 'nbconvert', '--to', 'html', '--log-level', 'ERROR', str(clean)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{nb.name}: {r.stderr[-2000:]}"
        pages[str(nb.relative_to(proc))] = clean.with_suffix('.html').read_text()
    return pages

def _api_notebooks():
    return [nb for nb in sorted((ROOT/'nbs').glob('[0-9][0-9]*.ipynb')) if _module_of(nb)]

def test_every_api_page_documents_its_public_names(html_pages):
    "Each public function and class has its own show_doc entry (an <h3> anchored at its name); other names are mentioned."
    import inspect
    nbs = _api_notebooks()
    assert nbs, "no API notebooks found"
    for nb in nbs:
        mod = importlib.import_module(f"nfp_nb.{_module_of(nb)}")
        page = html_pages[nb.name]
        names = [n for n in getattr(mod, '__all__', []) if not n.startswith('_')]
        api = [n for n in names if inspect.isfunction(getattr(mod, n)) or inspect.isclass(getattr(mod, n))]
        assert api, f"{nb.name}: exports no function or class"
        undocumented = [n for n in api if f'<h3 id="{n}">' not in page]
        assert not undocumented, f"{nb.name}: no show_doc heading for {undocumented}"
        missing = [n for n in names if n not in api and not n.isupper() and not re.search(rf'\b{re.escape(n)}\b', page)]
        assert not missing, f"{nb.name}: the rendered page does not mention {missing}"

def test_every_tutorial_shows_pictures(html_pages):
    tuts = [k for k in html_pages if k.startswith('tutorials/')]
    for k in tuts:
        assert '<img' in html_pages[k], f"{k}: no images in the rendered tutorial"

def test_sidebar_lists_every_notebook():
    side = (ROOT/'nbs'/'sidebar.yml').read_text()
    for nb in (ROOT/'nbs').rglob('*.ipynb'):
        rel = nb.relative_to(ROOT/'nbs').as_posix()
        if rel.startswith('_') or '/.' in rel or '.ipynb_checkpoints' in rel: continue
        assert rel in side, f"{rel} is not in nbs/sidebar.yml"

def test_every_public_name_has_a_docstring():
    "Every exported function and class (and their public methods) says what it does; show_doc renders it."
    import inspect, pkgutil, nfp_nb
    missing = []
    for m in pkgutil.iter_modules(nfp_nb.__path__):
        if m.name.startswith('_'): continue
        mod = importlib.import_module(f'nfp_nb.{m.name}')
        for n in getattr(mod, '__all__', []):
            o = getattr(mod, n)
            if (inspect.isfunction(o) or inspect.isclass(o)) and not inspect.getdoc(o): missing.append(f'{m.name}.{n}')
            if inspect.isclass(o):
                missing += [f'{m.name}.{n}.{k}' for k, v in vars(o).items()
                            if not k.startswith('_') and inspect.isfunction(v) and not v.__doc__]
    assert not missing, missing
