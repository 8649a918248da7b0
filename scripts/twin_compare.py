"""Per-step train losses of the Parameter Golf baseline script and of pgolf train, side by side (issue 35's
twins: scripts/gpu.sh fidelity-twin, scripts/twin_cpu.sh), the first step more than 1e-3 apart, the
largest difference, and both final full-val val_bpb.

  python3 scripts/twin_compare.py REFERENCE_LOG PGOLF_LOG
"""
import re
import sys

ref_log, pg_log = open(sys.argv[1]).read(), open(sys.argv[2]).read()
ref = {int(s): float(l) for s, l in re.findall(r"step:(\d+)/\d+ train_loss:(\S+)", ref_log)}
pg = {int(s): float(l) for s, l in re.findall(r"step (\d+)/\d+ loss (\S+)", pg_log)}
both = sorted(set(ref) & set(pg))
if not both:
    sys.exit("twin_compare: no step in both logs")
print(f"{'step':>5} {'reference':>10} {'pgolf':>10} {'pgolf - ref':>12}")
for s in both:
    print(f"{s:5d} {ref[s]:10.4f} {pg[s]:10.4f} {pg[s] - ref[s]:+12.5f}")
apart = [s for s in both if abs(pg[s] - ref[s]) > 1e-3]
worst = max(both, key=lambda s: abs(pg[s] - ref[s]))
print(f"{len(both)} steps; first step more than 1e-3 apart: {apart[0] if apart else 'none'}; "
      f"max |difference| over steps 1-10: {max(abs(pg[s] - ref[s]) for s in both if s <= 10):.2g} "
      f"(the reference logs 4 decimals); largest: {abs(pg[worst] - ref[worst]):.2g} at step {worst}")
late = [s for s in both if s >= 100]
if late:
    print(f"mean pgolf - reference over steps 100-{late[-1]}: {sum(pg[s] - ref[s] for s in late) / len(late):+.5f}")
rv = re.findall(r"step:\d+/\d+ val_loss:\S+ val_bpb:(\S+)", ref_log)
pv = re.findall(r"val_bpb (\S+) \(final", pg_log)
if rv and pv:
    print(f"final full-val val_bpb: reference {float(rv[-1]):.4f}, pgolf {float(pv[-1]):.4f}, "
          f"difference {float(pv[-1]) - float(rv[-1]):+.4f}")
