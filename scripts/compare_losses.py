"""Train losses of the Parameter Golf baseline script and of pgolf train side by side (issue 35), and both
final full-val val_bpb.

  python3 scripts/compare_losses.py REFERENCE_LOG PGOLF_LOG          every step (the twins: scripts/twin_cpu.sh,
                                                                     scripts/gpu.sh fidelity-twin), the first step
                                                                     more than 1e-3 apart, the largest difference
  python3 scripts/compare_losses.py REFERENCE_LOG PGOLF_LOG STEPS    mean losses per range of steps of a STEPS-step
                                                                     run (scripts/gpu.sh fidelity), against the bars
Both print the mean difference over steps 100 on.
"""
import re
import sys

ref_log, pg_log = open(sys.argv[1]).read(), open(sys.argv[2]).read()
ranges_of = int(sys.argv[3]) if len(sys.argv) > 3 else None
ref = {int(s): float(l) for s, l in re.findall(r"step:(\d+)/\d+ train_loss:(\S+)", ref_log)}
pg = {int(s): float(l) for s, l in re.findall(r"step (\d+)/\d+ loss (\S+)", pg_log)}
both = sorted(set(ref) & set(pg))
if ranges_of is None:
    if not both:
        sys.exit("compare_losses: no step in both logs")
    print(f"{'step':>5} {'reference':>10} {'pgolf':>10} {'pgolf - ref':>12}")
    for s in both:
        print(f"{s:5d} {ref[s]:10.4f} {pg[s]:10.4f} {pg[s] - ref[s]:+12.5f}")
    apart = [s for s in both if abs(pg[s] - ref[s]) > 1e-3]
    worst = max(both, key=lambda s: abs(pg[s] - ref[s]))
    print(f"{len(both)} steps; first step more than 1e-3 apart: {apart[0] if apart else 'none'}; "
          f"max |difference| over steps 1-10: {max(abs(pg[s] - ref[s]) for s in both if s <= 10):.2g} "
          f"(the reference logs 4 decimals); largest: {abs(pg[worst] - ref[worst]):.2g} at step {worst}")
else:
    print(f"{len(ref)} reference steps, {len(pg)} pgolf steps, {len(both)} in both")
    width = max(10, ranges_of // 12 // 10 * 10)
    print(f"{'steps':>11} {'reference':>10} {'pgolf':>10} {'pgolf - ref':>12}")
    for lo in range(1, ranges_of + 1, width):
        r = [s for s in both if lo <= s < lo + width]
        if r:
            a, b = sum(ref[s] for s in r) / len(r), sum(pg[s] for s in r) / len(r)
            print(f"{lo:5d}-{r[-1]:<5d} {a:10.4f} {b:10.4f} {b - a:+12.4f}")
bars = ranges_of is not None  # the fidelity runs are the issue's Must show: its bars beside the numbers
late = [s for s in both if s >= 100]
if late:
    mean = sum(pg[s] - ref[s] for s in late) / len(late)
    print(f"mean pgolf - reference over steps 100-{late[-1]}: "
          + (f"{mean:+.4f} (bar: within 0.003)" if bars else f"{mean:+.5f}"))
rv = re.findall(r"step:\d+/\d+ val_loss:\S+ val_bpb:(\S+)", ref_log)
pv = re.findall(r"val_bpb (\S+) \(final", pg_log)
if rv and pv:
    print(f"final full-val val_bpb: reference {float(rv[-1]):.4f}, pgolf {float(pv[-1]):.4f}, "
          f"difference {float(pv[-1]) - float(rv[-1]):+.4f}" + (" (bar: within 0.002)" if bars else ""))
