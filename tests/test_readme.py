"The README is generated from nbs/index.ipynb and opens with the two set-up commands CI relies on."
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_readme_matches_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'make_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

def test_readme_opens_with_two_commands():
    text = (ROOT/'README.md').read_text()
    block = re.search(r'```sh\n(.*?)```', text, re.S)
    assert block, "README has no sh block"
    cmds = [l for l in block.group(1).splitlines() if l.strip()]
    assert len(cmds) == 2, cmds
    assert cmds[0].startswith('pip install -e . && nfp_')
    assert cmds[1] == 'pip install -e ".[dev]" && nbdev_test && pytest'
    # the sh block is the first code block of the README
    assert text.index('```sh') == text.index('```')

def test_ci_runs_the_readme_test_command():
    ci = (ROOT/'.ci'/'run').read_text()
    assert 'grep -m1 -E \'^pip install -e "\\.\\[dev\\]"\' README.md' in ci
    assert 'git diff --exit-code' in ci
    # both README commands, inside a fresh venv (as a user runs them), before the test command
    assert "grep -m1 -E '^pip install -e \\. && nfp_' README.md" in ci
    assert ci.index('python3 -m venv') < ci.index('bash -c "$demo_cmd"') < ci.index('bash -c "$test_cmd"')
