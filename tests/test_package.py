"""Packaging: build the sdist and wheel, install the wheel into a fresh venv, run the console scripts.

The venv sees the heavy dependencies (torch, ...) of the interpreter running the tests and gets the
wheel with `--no-deps`, so the test checks *our* package (its modules, console scripts, data), not
pip's resolver, and needs no network. `--system-site-packages` is not enough for that: when the tests
themselves run inside a user's venv, it exposes the *base* interpreter's site-packages, where torch
is not. A `.pth` file listing this interpreter's site directories is what works in both cases.
"""
import configparser, os, shutil, site, subprocess, sys, zipfile, tarfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def _cfg():
    c = configparser.ConfigParser(delimiters=['=']); c.read(ROOT/'settings.ini')
    return c['DEFAULT']

def _console_scripts():
    return [l.split('=')[0].strip() for l in _cfg()['console_scripts'].split('\n') if l.strip()]

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist')
    src = tmp_path_factory.mktemp('src')/'nfp_nb'
    # build from a copy so no build/ or egg-info litter lands in the work tree
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns('.git', '_proc', '_docs', 'runs', 'build', 'dist', '*.egg-info', '__pycache__', 'test-artifacts'))
    r = subprocess.run([sys.executable, '-m', 'build', '--no-isolation', '--sdist', '--wheel', '--outdir', str(out), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return out

def test_sdist_and_wheel_contents(built):
    whl = next(built.glob('nfp_nb-*.whl')); sdist = next(built.glob('nfp_nb-*.tar.gz'))
    names = zipfile.ZipFile(whl).namelist()
    mods = sorted(p.name for p in (ROOT/'nfp_nb').glob('*.py'))
    for m in mods: assert f'nfp_nb/{m}' in names, f"{m} missing from the wheel"
    ep = next(n for n in names if n.endswith('entry_points.txt'))
    eps = zipfile.ZipFile(whl).read(ep).decode()
    for s in _console_scripts(): assert f'{s} =' in eps or f'{s}=' in eps, s
    with tarfile.open(sdist) as t: snames = t.getnames()
    assert any(n.endswith('/settings.ini') for n in snames) and any(n.endswith('/README.md') for n in snames)

def _site_dirs():
    "This interpreter's site-packages directories (a venv's own, then the base's when it sees them)."
    dirs = site.getsitepackages() + [p for p in sys.path if p.rstrip('/').endswith(('site-packages', 'dist-packages'))]
    return [d for d in dict.fromkeys(dirs) if Path(d).is_dir()]

def _make_venv(venv:Path):
    "A fresh venv whose own site-packages come first, then this interpreter's (read, never written)."
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    py = venv/'bin'/'python'
    own = subprocess.run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                         capture_output=True, text=True, check=True).stdout.strip()
    # plain path lines: the outer editable install of the work tree (a .pth/finder there) stays invisible
    (Path(own)/'_outer_site.pth').write_text('\n'.join(_site_dirs()) + '\n')
    return py

def test_wheel_installs_and_runs_in_fresh_venv(built, tmp_path):
    whl = next(built.glob('nfp_nb-*.whl'))
    venv = tmp_path/'venv'
    py, bindir = _make_venv(venv), venv/'bin'
    r = subprocess.run([str(py), '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', str(whl)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, 'PYTHONPATH': ''}
    # the venv's copy must win over the editable install of the work tree
    r = subprocess.run([str(py), '-c', 'import nfp_nb, sys; print(nfp_nb.__file__, nfp_nb.__version__)'],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert str(venv) in r.stdout and _cfg()['version'] in r.stdout, r.stdout
    for s in _console_scripts(): assert (bindir/s).exists(), f"console script {s} not installed"
    r = subprocess.run([str(bindir/'nfp_prep'), '--help'], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0 and 'usage' in r.stdout.lower(), r.stderr
    out = tmp_path/'s.mp4'
    r = subprocess.run([str(bindir/'nfp_sample'), str(out), '--frames', '6', '--size', '32'],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0
    # a main that returns what it made (nfp_prep: the FrameStore) must still exit 0 as a console script
    r = subprocess.run([str(bindir/'nfp_prep'), str(out), '--run', 'run', '--size', '16'],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and r.stderr.strip() == '', (r.returncode, r.stderr)
    assert (tmp_path/'run'/'frames').is_dir()
