"The README is generated from nbs/index.ipynb, and CI runs the two commands it shows: the demo and the tests."
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_readme_matches_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'make_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

def sh_block_under(text:str, heading:str) -> list:
    "The commands of the first ```sh block in the README section `## heading`."
    m = re.search(rf'^## {re.escape(heading)}\n(.*?)(?=^## |\Z)', text, re.S | re.M)
    assert m, f"README has no '## {heading}' section"
    block = re.search(r'```sh\n(.*?)```', m.group(1), re.S)
    assert block, f"README's '## {heading}' section has no sh block"
    return [l for l in block.group(1).splitlines() if l.strip()]

def ci_commands() -> dict:
    "Run the lines of .ci/run that take the README's commands (`x_cmd=$(grep ... README.md)`), as CI runs them."
    lines = re.findall(r'^(\w+_cmd)=(\$\(grep .* README\.md\))$', (ROOT/'.ci'/'run').read_text(), re.M)
    assert [v for v, _ in lines] == ['demo_cmd', 'test_cmd'], lines
    out = {}
    for var, sub in lines:
        r = subprocess.run(['bash', '-c', f'{var}={sub}; printf "%s" "${var}"'], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, f".ci/run's {var}: {r.stderr or 'its grep matches no line of the README'}"
        out[var] = r.stdout
    return out

def test_ci_runs_the_commands_the_readme_shows():
    text, cmds = (ROOT/'README.md').read_text(), ci_commands()
    assert sh_block_under(text, 'Run the demo') == [cmds['demo_cmd']]
    assert sh_block_under(text, 'Run the tests') == [cmds['test_cmd']]
    assert cmds['demo_cmd'].startswith('pip install -e . && nfp_demo')
    assert cmds['test_cmd'] == 'pip install -e ".[dev]" && nbdev_test && pytest'
    # CI runs them in a fresh venv, as a user would, the demo first, then checks the tree is what was committed
    ci = (ROOT/'.ci'/'run').read_text()
    assert ci.index('python3 -m venv') < ci.index('bash -c "$demo_cmd"') < ci.index('bash -c "$test_cmd"') < ci.index('git diff --exit-code')
