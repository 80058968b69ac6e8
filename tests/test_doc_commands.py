"Every `nfp_*` command line written in the README and the notebooks parses with the command's own parser."
import json, re, shlex
from pathlib import Path
import pytest
from nfp_nb.core import ConfigError
from nfp_nb.cli import sample_parser, prep_parser, train_parser, loop_parser, rollout_parser, demo_parser, import_parser

ROOT = Path(__file__).resolve().parents[1]
PARSERS = {'nfp_sample': sample_parser, 'nfp_prep': prep_parser, 'nfp_train': train_parser, 'nfp_loop': loop_parser,
           'nfp_rollout': rollout_parser, 'nfp_demo': demo_parser, 'nfp_import': import_parser}

def _texts():
    "(where, text) of the README and of every notebook cell."
    yield 'README.md', (ROOT/'README.md').read_text()
    for nb in sorted((ROOT/'nbs').rglob('*.ipynb')):
        if '.ipynb_checkpoints' in nb.parts: continue
        for i, c in enumerate(json.loads(nb.read_text())['cells']):
            yield f"{nb.relative_to(ROOT)} cell {i}", ''.join(c['source'])

def command_lines() -> list:
    "(where, command, argv) of every line in a code block that starts an nfp_* command (continuations joined, comments dropped)."
    out = []
    for where, text in _texts():
        text = text.replace('\\\n', ' ')
        fenced = False
        for line in text.splitlines():
            if line.strip().startswith('```'): fenced = not fenced; continue
            if not fenced: continue                       # prose may quote a flag inline; commands live in code blocks
            for seg in re.split(r'\s(?:&&|;)\s', line.strip()):   # `pip install -e . && nfp_demo ...`: each command
                m = re.match(r'^(?:\$ )?(nfp_[a-z]+)\s(.*)$', seg.strip())
                if not m or m.group(1) not in PARSERS: continue
                rest = re.split(r'\s(?:\||>|2>)\s', m.group(2).split(' # ')[0])[0]
                if '...' in rest or '[' in rest or '|' in rest or '<' in rest: continue    # a usage synopsis, not a command
                try: argv = shlex.split(rest)
                except ValueError: continue
                out.append((where, m.group(1), argv))
    return out

CASES = command_lines()

def test_the_docs_hold_command_lines():
    cmds = {c for _, c, _ in CASES}
    assert len(CASES) >= 30 and {'nfp_prep', 'nfp_train', 'nfp_rollout', 'nfp_demo', 'nfp_import'} <= cmds, (len(CASES), cmds)

@pytest.mark.parametrize('where,cmd,argv', CASES, ids=[f"{w}: {c} {' '.join(a)}"[:120] for w, c, a in CASES])
def test_documented_command_parses(where, cmd, argv):
    try: PARSERS[cmd]().parse_args(argv)
    except ConfigError as e: pytest.fail(f"{where}: `{cmd} {' '.join(argv)}` does not parse: {e}")
