"""Turn the benchmarks' stored text outputs (`bench/results/*.txt`) into JSON the benchmarks page renders.

    python tools/bench_json.py            # bench/results/NAME.txt → bench/results/NAME.json, for every bench below
    python tools/bench_json.py --check    # exit 1 if a JSON file is missing or differs from its text

Each text output starts with a header line that `bench/` scripts write: `# DATE CPU, N cores, torch cpu capability
ISA`. The JSON keeps that as `date` and `hardware` (CPU model, cores, instruction set, whether bf16 is native, GPU),
the command that ran, and the bench's numbers as plain rows; nothing is computed here that the text does not say.
"""
from __future__ import annotations
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT/'bench'/'results'
NUM = r'([-\d.]+)'


def header(text:str) -> dict:
    "Date, hardware and command from the first lines of a bench output."
    m = re.match(r'# (\d{4}-\d\d-\d\d) (.+?), (\d+) cores, torch cpu capability (\w+)', text)
    if not m: raise ValueError('no "# DATE CPU, N cores, torch cpu capability ISA" header')
    cmd = re.search(r'^\$ (.+)$', text, re.M)
    torch = re.search(r'torch ([\d.]+\+\w+)', text)
    bf16 = re.search(r'(?:native bf16|bf16 native): (True|False)', text)
    return dict(date=m.group(1), command=cmd.group(1) if cmd else None, torch=torch.group(1) if torch else None,
                hardware=dict(cpu=m.group(2), cores=int(m.group(3)), isa=m.group(4),
                              bf16_native=None if bf16 is None else bf16.group(1) == 'True', gpu=None))


def parse_train(text:str) -> dict:
    "bench_train.py: ms per training step of each variant, per batch size, and where a step's time goes."
    out = dict(batches=[])
    for block in re.split(r'\n(?=batch \d+, )', text)[1:]:
        b = dict(batch=int(re.match(r'batch (\d+)', block).group(1)),
                 setting=re.match(r'batch \d+, ([^:]+):', block).group(1), variants=[], parts=[])
        for m in re.finditer(rf'^  (\w[\w ()+]*?)\s{{2,}}{NUM}\s+{NUM}\s+{NUM}\s+{NUM}\s+(\d+)%\s+(\d+)%\s+\((\d+)-(\d+) ms\)', block, re.M):
            b['variants'].append(dict(variant=m.group(1).strip(), ms_per_step=float(m.group(2)), images_per_s=float(m.group(3)),
                                      vs_baseline=float(m.group(4)), gflops=float(m.group(5)),
                                      spread_ms=[int(m.group(8)), int(m.group(9))]))
        for m in re.finditer(rf'^    (\w[\w ()+,]*?)\s{{2,}}{NUM} ms$', block, re.M):
            b['parts'].append(dict(part=m.group(1).strip(), ms=float(m.group(2))))
        t = re.search(r'texture loss: (\d+) ms = (\d+)% of a default fp32 step', block)
        if t: b['texture_loss'] = dict(ms=int(t.group(1)), share=int(t.group(2)) / 100)
        out['batches'].append(b)
    return out


def parse_rollout(text:str) -> dict:
    "bench_rollout.py: frames per second of each way to roll out, and what compiling costs and gives."
    last = [l for l in text.splitlines() if l.startswith('{')][-1]
    d = json.loads(last)
    s = re.search(r'# (\w+) generator, (\d+) px, (\d+) steps, (\d+) repeats', text)
    w = re.search(rf'compile warm-up {NUM} s with an empty inductor cache, {NUM} s with it filled', text)
    c = re.search(rf'compile: {NUM}x the eager rollout .*?break-even (\d+) frames', text)
    names = {'a': 'naive PNG loop, fp32, autograd', 'b': 'bare forwards (bfloat16)', 'c': 'rollout → mp4',
             'c_compile': 'rollout → mp4, torch.compile'}
    return dict(setting=dict(preset=s.group(1), size=int(s.group(2)), steps=int(s.group(3)), repeats=int(s.group(4))),
                rows=[dict(way=names[k], frames_per_s=d['wall'][k], frames_per_cpu_s=d['cpu'][k]) for k in names],
                compile=dict(warmup_s_empty_cache=float(w.group(1)), warmup_s_filled_cache=float(w.group(2)),
                             speedup=float(c.group(1)), break_even_frames=int(c.group(2))))


def parse_restorer(text:str) -> dict:
    "bench_restorer.py: B's training step with its inputs made online or pre-rendered, against A's."
    s = re.search(r'(\d+) frames at (\d+)×(\d+), preset (\w+) \(batch size (\d+)\), n (\d+)\.\.(\d+)', text)
    steps = [dict(net=m.group(1).strip(), ms_per_step=int(m.group(2)), vs_a=float(m.group(3)))
             for m in re.finditer(rf'^  (A|B online|B prerendered)\s+(\d+) ms/step\s+\({NUM}x an A step\)', text, re.M)]
    pre = re.search(rf'prerender of A\^1\.\.A\^(\d+) for (\d+) frames: {NUM} s once \((\d+) MB on disk\)', text)
    pays = re.search(r'prerendering pays after (\d+) B steps', text)
    runs = [dict(steps=int(m.group(1)), online_s=int(m.group(2)), prerendered_s=int(m.group(3)), faster=m.group(4))
            for m in re.finditer(r'a B run of\s+(\d+) steps: online\s+(\d+) s, prerendered\s+(\d+) s \([\d.]+x\) -> faster: (\w+)', text)]
    return dict(setting=dict(frames=int(s.group(1)), size=int(s.group(2)), preset=s.group(4), batch=int(s.group(5)),
                             n=[int(s.group(6)), int(s.group(7))]),
                steps=steps, prerender=dict(n_max=int(pre.group(1)), frames=int(pre.group(2)), seconds=float(pre.group(3)),
                                            disk_mb=int(pre.group(4)), pays_after_b_steps=int(pays.group(1))),
                runs=runs)


def parse_compile(text:str) -> dict:
    "bench_compile.py: forward + backward time, eager against torch.compile, part by part."
    s = re.search(r'(\w+) preset at (\d+) px, batch (\d+)', text)
    rows = [dict(dtype=m.group(1), part=m.group(2).strip(), eager_ms=float(m.group(3)), compiled_ms=float(m.group(4)),
                 speedup=float(m.group(5)), compile_s=int(m.group(6)))
            for m in re.finditer(rf'^  (fp32|bf16) (.+?)\s+eager\s+{NUM} ms\s+compiled\s+{NUM} ms\s+{NUM}x\s+\(compile \+ 2 steps (\d+) s\)',
                                 text, re.M)]
    return dict(setting=dict(preset=s.group(1), size=int(s.group(2)), batch=int(s.group(3))), rows=rows)


PARSERS = {'bench_train': parse_train, 'bench_train_b4': parse_train, 'bench_rollout': parse_rollout,
           'bench_restorer': parse_restorer, 'bench_compile': parse_compile}
# bench_compile and bench_restorer do not print whether bf16 is native; they ran on the machine and date of
# bench_train, which does (the header lines are identical), so they take its answer.
SAME_MACHINE_AS = {'bench_compile': 'bench_train', 'bench_restorer': 'bench_train'}


def convert(name:str) -> dict:
    "The JSON record of `bench/results/NAME.txt`."
    text = (RESULTS/f'{name}.txt').read_text()
    d = header(text)
    if d['hardware']['bf16_native'] is None and name in SAME_MACHINE_AS:
        ref_text = (RESULTS/f'{SAME_MACHINE_AS[name]}.txt').read_text()
        ref = header(ref_text)
        if text.splitlines()[0] == ref_text.splitlines()[0]: d['hardware']['bf16_native'] = ref['hardware']['bf16_native']
    return dict(bench=name, source=f'bench/results/{name}.txt', **d, results=PARSERS[name](text))


def main(argv=None) -> int:
    check = '--check' in (argv if argv is not None else sys.argv[1:])
    bad = []
    for name in PARSERS:
        text = json.dumps(convert(name), indent=1, ensure_ascii=False) + '\n'
        out = RESULTS/f'{name}.json'
        if check:
            if not out.exists() or out.read_text() != text: bad.append(str(out.relative_to(ROOT)))
        else: out.write_text(text); print(f'wrote {out.relative_to(ROOT)}')
    if bad: print('out of date (run python tools/bench_json.py):', ', '.join(bad))
    return 1 if bad else 0


if __name__ == '__main__': sys.exit(main())
