"""Why compiled training is (or is not) faster here: torch.compile against eager, part by part.

    python bench/bench_compile.py            # small preset, 128 px, fp32 and bf16 autocast (where native)
    python bench/bench_compile.py --quick    # 64 px, fewer rounds

1. Graph breaks and graphs (`torch._dynamo.explain`) of G and D.
2. Recompiles in the Trainer's pattern: D on the batched real+fake pairs (2B, D's weights need gradients), then D
   on (input, fake) for G's loss (B, D's weights frozen), step after step.
3. Forward + backward, compiled vs eager (medians of interleaved rounds, warm-up excluded, compile time printed):
   G; D's batched pass; pix2pixHD's residual block with InstanceNorm; the same block without a norm. The norm-less
   block shows what inductor does with the convolutions alone; the difference to the normed block is the norm's share.
Prints each ratio (compiled / eager speed) and whether compiled training would pay (target >= 1.0x for G+D).
"""
import argparse, statistics, time, warnings, os
import torch
from torch import nn
from nfp_nb.core import bf16_supported, autocast
from nfp_nb.models import get_preset, build_generator, build_discriminator, ResnetBlock

def timed_pair(fe, fc, rounds):
    "Median seconds of fe and fc, interleaved."
    te, tc = [], []
    for _ in range(rounds):
        t = time.perf_counter(); fe(); te.append(time.perf_counter() - t)
        t = time.perf_counter(); fc(); tc.append(time.perf_counter() - t)
    return statistics.median(te), statistics.median(tc)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true'); ap.add_argument('--size', type=int); ap.add_argument('--rounds', type=int)
    ap.add_argument('--preset', default='small'); ap.add_argument('--threads', type=int)
    a = ap.parse_args()
    warnings.filterwarnings('ignore')
    if a.threads: torch.set_num_threads(a.threads)
    size, rounds = a.size or (64 if a.quick else 128), a.rounds or (5 if a.quick else 9)
    dev = torch.device('cpu')
    P = get_preset(a.preset)
    print(f"torch {torch.__version__}, cpu capability {torch.backends.cpu.get_cpu_capability()}, threads {torch.get_num_threads()}, "
          f"load avg {os.getloadavg()[0]:.1f}; {a.preset} preset at {size} px, batch 1")
    torch.manual_seed(0)
    G, D = build_generator(P.generator), build_discriminator(P.discriminator)
    x = torch.randn(1, 3, size, size)
    print("\n1. graph breaks (torch._dynamo.explain)")
    for name, f, args in (('G', G, (x,)), ('D', D, (torch.randn(2, 6, size, size),))):
        e = torch._dynamo.explain(f)(*args)
        print(f"  {name}: {e.graph_count} graph(s), {e.graph_break_count} break(s), {e.op_count} ops"
              + ''.join(f"\n    break: {b.reason[:160]}" for b in e.break_reasons[:3]))
    torch._dynamo.reset()
    print("\n2. recompiles in the Trainer's D pattern (2B with weight gradients, then B with D frozen), 4 steps")
    graphs = []
    def counting(gm, ex): graphs.append(gm); return gm.forward
    Dc = torch.compile(D, backend=counting)
    for _ in range(4):
        Dc(torch.randn(2, 6, size, size)); D.requires_grad_(False); Dc(torch.randn(1, 6, size, size)); D.requires_grad_(True)
    print(f"  {len(graphs)} graphs compiled (1 would mean no recompiles; each extra one is a recompile, once, not per step)")
    torch._dynamo.reset()
    print(f"\n3. forward + backward, compiled / eager speed (median of {rounds} interleaved rounds)")
    dtypes = ['fp32'] + (['bf16'] if bf16_supported(dev) else [])
    ngf = P.generator.ngf * 2 ** P.generator.n_downsampling
    blocks = {'ResnetBlock + InstanceNorm': lambda: ResnetBlock(ngf, norm='instance'),
              'ResnetBlock, no norm': lambda: ResnetBlock(ngf, norm='none')}
    fs = size // 2 ** P.generator.n_downsampling
    rows = {}
    for dt in dtypes:
        parts = {'G': (build_generator(P.generator), lambda: torch.randn(1, 3, size, size)),
                 "D batched pass (2B)": (build_discriminator(P.discriminator), lambda: torch.randn(2, 6, size, size)),
                 **{k: (f(), lambda: torch.randn(1, ngf, fs, fs)) for k, f in blocks.items()}}
        for name, (m, mk) in parts.items():
            inp = mk().requires_grad_(True)
            mc = torch.compile(m)
            def run(mod):
                with autocast(dev, dt):
                    out = mod(inp)
                out = out if torch.is_tensor(out) else sum(o[-1].float().mean() for o in out)
                out.float().mean().backward()
            t0 = time.perf_counter(); run(mc); run(mc); warm = time.perf_counter() - t0
            e, c = timed_pair(lambda: run(m), lambda: run(mc), rounds)
            rows[(dt, name)] = e / c
            print(f"  {dt:4s} {name:28s} eager {e * 1e3:7.1f} ms  compiled {c * 1e3:7.1f} ms  {e / c:5.2f}x  (compile + 2 steps {warm:.0f} s)")
            torch._dynamo.reset()
    for dt in dtypes:
        r = rows[(dt, 'G')], rows[(dt, 'D batched pass (2B)')]
        print(f"{dt}: compiled G {r[0]:.2f}x, D {r[1]:.2f}x -> compiled training {'pays' if min(r) >= 1.0 else 'does NOT pay'} "
              f"(target >= 1.0x); InstanceNorm block {rows[(dt, 'ResnetBlock + InstanceNorm')]:.2f}x vs no-norm block "
              f"{rows[(dt, 'ResnetBlock, no norm')]:.2f}x")

if __name__ == '__main__': main()
