"""The docs site's links and the notebooks' stored outputs.

Quarto is not installed everywhere, so these tests check what Quarto would be given: `nbdev.serve.proc_nbs()`
makes the processed notebooks in `_proc/` (the same step `nbdev_docs` runs first; it reuses the cache that
`tests/test_docs.py` leaves there). Every link in their markdown, and in the markdown their cells output
(`show_doc`, tables), must reach a page of the site or a file in `nbs/`, and every `#anchor` an id on that page:
a heading's id as pandoc makes it, or an explicit `{#id}` / `id="..."`. nbdev turns backticked names into links
to `PAGE.html#name` (lowercase, dots kept), which only resolve where the page documents that name with
`show_doc`. The README's links are checked the same way. Stored cell outputs must not show a temporary path
(`/tmp/...`) or an `<ipython-input-...>` warning location: both mean a reader sees the author's machine.
"""
import configparser, json, re, subprocess, sys
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS, PROC = ROOT/'nbs', ROOT/'_proc'


def docs_url() -> str:
    "The docs site's address from settings.ini, ending in '/'."
    cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini')
    return cfg['DEFAULT']['doc_host'].rstrip('/') + '/' + cfg['DEFAULT']['doc_baseurl'].strip('/') + '/'


def pandoc_id(text:str) -> str:
    "The id pandoc gives a heading: formatting and links dropped, lowercase, only alphanumerics and _-. kept, spaces to -, up to the first letter removed."
    t = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text)                 # [text](link) → text
    t = re.sub(r'\{[^}]*\}\s*$', '', t)                                  # trailing {attributes}
    t = re.sub(r'<[^>]+>', '', t).replace('`', '').replace('*', '')
    t = ''.join(c for c in t.strip().lower() if c.isalnum() or c in '_-. \n')
    t = re.sub(r'\s+', '-', t)
    t = re.sub(r'^[^a-z]+', '', t) if re.search(r'[a-z]', t) else ''
    return t or 'section'


def _src(c) -> str: return ''.join(c['source']) if isinstance(c['source'], list) else c['source']


def _markdown_of(nb:dict) -> list:
    "The markdown a page shows: markdown cells, and the text/markdown outputs of code cells."
    out = []
    for c in nb['cells']:
        if c['cell_type'] == 'markdown': out.append(_src(c))
        for o in c.get('outputs', []):
            md = o.get('data', {}).get('text/markdown')
            if md: out.append(''.join(md) if isinstance(md, list) else md)
    return out


def _strip_code(md:str) -> str:
    "Markdown without fenced code blocks and inline code spans (links inside them are not links)."
    md = re.sub(r'^(```|~~~).*?^\1', '', md, flags=re.S | re.M)
    md = re.sub(r'\[`([^`\n]*)`\]', r'[\1]', md)                      # [`name`](link): keep the link
    return re.sub(r'`[^`\n]*`', '', md)


def anchors(md_texts:list) -> set:
    "Every id a page will have: its headings' (pandoc's rule, duplicates numbered), explicit {#id} and id=\"...\"."
    ids, seen = set(), {}
    for md in md_texts:
        body = re.sub(r'^(```|~~~).*?^\1', '', md, flags=re.S | re.M)
        for m in re.finditer(r'^#{1,6}\s+(.+?)\s*$', body, re.M):
            h = m.group(1)
            x = re.search(r'\{[^}]*#([\w:.-]+)[^}]*\}\s*$', h)
            if x: ids.add(x.group(1)); continue
            i = pandoc_id(h)
            n = seen.get(i, 0); seen[i] = n + 1
            ids.add(i if n == 0 else f'{i}-{n}')
        ids |= set(re.findall(r'\{#([\w:.-]+)', body)) | set(re.findall(r'\bid="([^"]+)"', md))
    return ids


def links(md:str) -> list:
    "Targets of markdown links and images, and of href/src attributes."
    md = _strip_code(md)
    out = [m.group(1) for m in re.finditer(r'\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)', md)]
    return out + re.findall(r'\b(?:href|src)="([^"]+)"', md)


@lru_cache(None)
def site() -> dict:
    "page html path (relative to the site root) → (processed notebook path, its markdown texts)."
    r = subprocess.run([sys.executable, '-c', 'import nbdev.serve; nbdev.serve.proc_nbs()'], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    pages = {}
    for nb_path in sorted(PROC.rglob('*.ipynb')):
        if '.ipynb_checkpoints' in nb_path.parts: continue
        nb = json.loads(nb_path.read_text())
        rel = nb_path.relative_to(PROC)
        front = next((_src(c) for c in nb['cells'] if c['cell_type'] == 'raw' and _src(c).startswith('---')), '')
        m = re.search(r'^output-file:\s*(\S+)', front, re.M)
        html = (rel.parent/m.group(1)).as_posix() if m else rel.with_suffix('.html').as_posix()
        pages[html] = (rel, _markdown_of(nb))
    return pages


def _page_of(target_path:str, base:Path):
    "The site page (html path) a relative link from page folder `base` reaches, or None; '' is the same page."
    if not target_path: return ''
    p = (base/unquote(target_path)).as_posix()
    parts = []
    for s in p.split('/'):
        if s == '..': parts = parts[:-1]
        elif s not in ('', '.'): parts.append(s)
    p = '/'.join(parts)
    pages = site()
    if p.endswith('.ipynb'):
        return next((h for h, (rel, _) in pages.items() if rel.as_posix() == p), None)
    if p.endswith('.html'): return p if p in pages else None
    return p if (p.endswith('/') or p == '') and (p + 'index.html') in pages else None


def check_link(target:str, page_rel:Path, page_html:str) -> str:
    "'' if `target`, linked from the page `page_html` (processed notebook `page_rel`), resolves; else why not."
    base_url = docs_url()
    if target.startswith(base_url): target, base = target[len(base_url):], Path('.')
    elif re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I) or target.startswith('//'): return ''   # another site
    else: base = page_rel.parent
    path, _, anchor = target.partition('#')
    pages = site()
    page = page_html if path == '' else _page_of(path, base)
    if page is None:                                                   # a file, not a page: an image, a data file
        f = NBS/base/unquote(path)
        return '' if f.exists() and not anchor else f"{target}: no such page or file"
    if anchor and anchor not in anchors(pages[page][1]): return f"{target}: {page} has no #{anchor}"
    return ''


def _notebooks() -> list:
    "The docs' notebooks, relative to nbs/ (nbdev skips names starting with '_')."
    return sorted(nb.relative_to(NBS).as_posix() for nb in NBS.rglob('*.ipynb')
                  if '.ipynb_checkpoints' not in nb.parts and not any(p.startswith('_') for p in nb.relative_to(NBS).parts))


@pytest.mark.parametrize('nb', _notebooks())
def test_links_resolve(nb):
    "Every link on the page of `nb` reaches a page (and the anchor an id on it) or a file."
    page = next((h for h, (rel, _) in site().items() if rel.as_posix() == nb), None)
    assert page, f"{nb}: not in _proc after nbdev.serve.proc_nbs()"
    rel, texts = site()[page]
    bad = [why for md in texts for t in links(md) if (why := check_link(t, rel, page))]
    assert not bad, f"{nb} ({page}): " + '; '.join(dict.fromkeys(bad))


def test_readme_links_resolve():
    "The README's links to the docs site reach pages and anchors; its relative links reach files."
    text, base_url = (ROOT/'README.md').read_text(), docs_url()
    bad = []
    for t in links(text):
        if t.startswith(base_url): why = check_link(t, Path('index.ipynb'), 'index.html')
        elif re.match(r'^[a-z][a-z0-9+.-]*:', t, re.I) or t.startswith('#'): why = ''
        else: why = '' if (ROOT/unquote(t.partition('#')[0])).exists() else f"{t}: no such file"
        if why: bad.append(why)
    assert not bad, bad


def test_anchor_rule():
    "Anchors as pandoc makes them: lowercase, dots and underscores kept, no leading punctuation."
    assert pandoc_id('GlobalGenerator.from_config') == 'globalgenerator.from_config'
    assert pandoc_id('`nfp_prep`') == 'nfp_prep'
    assert pandoc_id('_Marbler') == 'marbler'
    assert pandoc_id('1. Prepare the frames') == 'prepare-the-frames'
    assert pandoc_id('Loop quality') == 'loop-quality'
    assert anchors(['## A\n\n## A\n']) == {'a', 'a-1'}


def _stored_outputs():
    for rel in _notebooks():
        nb = NBS/rel
        for i, c in enumerate(json.loads(nb.read_text())['cells']):
            for o in c.get('outputs', []):
                texts = [o.get('text', '')] + [v for k, v in o.get('data', {}).items() if not k.startswith('image/')]
                texts += [o.get('evalue', '')] + o.get('traceback', [])
                for t in texts:
                    yield nb.relative_to(ROOT).as_posix(), i, ''.join(t) if isinstance(t, list) else str(t)


@pytest.mark.parametrize('nb', _notebooks())
def test_stored_outputs_show_no_local_paths(nb):
    "No stored output shows a temporary path or an <ipython-input-...> warning location."
    bad = [f"cell {i}: {m.group(0)!r}" for where, i, t in _stored_outputs() if where == f'nbs/{nb}'
           for m in [re.search(r'/tmp/[^\s\'")]*|<ipython-input-[^>]*>', t)] if m]
    assert not bad, f"{nb}: " + '; '.join(bad[:5])


def test_nbdev_yml_is_what_nbdev_writes():
    "A docs build rewrites nbs/nbdev.yml from settings.ini (nbdev.quarto.refresh_quarto_yml): the tracked file must match."
    from nbdev.config import get_config
    from nbdev.quarto import _nbdev_yml
    cfg = get_config(path=ROOT)
    vals = {k: cfg[k] for k in ('title', 'description', 'branch', 'git_url', 'doc_host', 'doc_baseurl')}
    assert (NBS/'nbdev.yml').read_text() == _nbdev_yml.format(doc_path=cfg.doc_path.name, **vals)


def test_quarto_yml_has_no_dead_settings():
    "nbdev.yml sets the output folder and the site's title and addresses; _quarto.yml repeating them would be dead or in conflict."
    q = (NBS/'_quarto.yml').read_text()
    assert 'output-dir' not in q and 'site-url' not in q and 'description:' not in q
