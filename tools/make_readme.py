#!/usr/bin/env python
"""Make README.md from nbs/index.ipynb without Quarto.

`nbdev_readme` renders the landing page with Quarto, which is not always installed. This script does
the same job with nbdev's notebook processors and nbconvert's markdown exporter: hidden cells and
directive comments are dropped, images in `nbs/` are re-pointed so they work from the repo root, and links to
other notebooks point at their pages on the docs site (`doc_host` + `doc_baseurl` in settings.ini).

    python tools/make_readme.py          # write README.md
    python tools/make_readme.py --check  # exit 1 if README.md is out of date
"""
import re, sys, copy, configparser
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n"

def docs_url() -> str:
    "The docs site's address from settings.ini, ending in '/'."
    cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini')
    d = cfg['DEFAULT']
    return d['doc_host'].rstrip('/') + '/' + d['doc_baseurl'].strip('/') + '/'

def _page_link(m) -> str:
    "A relative link to a notebook → its page on the docs site; any other relative link → under nbs/."
    target = m.group(1)
    path, _, anchor = target.partition('#')
    if path.endswith('.ipynb'):   # nbdev names the page as nbdev.doclinks._nbpath2html does: '01_walkthrough' → 'walkthrough'
        folder, _, name = path.rpartition('/')
        page = re.sub(r'^\d+[a-zA-Z0-9]*_', '', name.lower())[:-len('.ipynb')] + '.html'
        return f"]({docs_url()}{folder + '/' if folder else ''}{page}{'#' + anchor if anchor else ''})"
    return f"](nbs/{target})"

def _directives(src):
    return {m.group(1) for m in re.finditer(r'^#\|\s*([\w-]+)', src, re.M)}

def readme_markdown(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    "The README text for the landing notebook `nb_path`."
    nb = nbformat.read(str(nb_path), as_version=4)
    nb = copy.deepcopy(nb)
    cells = []
    for c in nb.cells:
        d = _directives(c.source)
        if d & {'hide', 'exporti', 'default_exp'}: continue
        if c.cell_type == 'code':
            c.source = '\n'.join(l for l in c.source.splitlines() if not l.startswith('#|')).strip()
            if 'echo: false' in c.source or 'hide_input' in d: c.source = ''
            c.outputs = [o for o in c.outputs if o.get('output_type') != 'stream' or o.get('name') != 'stderr']
        cells.append(c)
    nb.cells = cells
    nb.metadata['language_info'] = {'name': 'python'}   # so code blocks are fenced as python
    body, _ = MarkdownExporter().from_notebook_node(nb)
    body = re.sub(r'\]\((?!https?:|/|#)([^)]+)\)', _page_link, body)
    body = re.sub(r'src="(?!https?:|/|data:)([^"]+)"', lambda m: f'src="nbs/{m.group(1)}"', body)
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    return HEADER + body

if __name__ == '__main__':
    text = readme_markdown()
    out = ROOT/'README.md'
    if '--check' in sys.argv:
        ok = out.exists() and out.read_text() == text
        print('README.md is up to date' if ok else 'README.md differs from nbs/index.ipynb: run python tools/make_readme.py')
        sys.exit(0 if ok else 1)
    out.write_text(text)
    print(f'wrote {out}')
