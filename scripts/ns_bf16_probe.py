#!/usr/bin/python3
"""How much Muon's Newton-Schulz moves when every product it stores is rounded to bfloat16, as the Parameter
Golf baseline's train_gpt.py runs it (issue 35, docs/fidelity.md): the quintic iteration with Muon's published
coefficients on Gaussian and low-rank-plus-noise gradients, in float32 and with each stored result rounded
to nearest even bf16; prints the update's norm ratio, singular values and cosine. Debian's python3-numpy:
  /usr/bin/python3 scripts/ns_bf16_probe.py"""
import numpy as np

A, B, C = 3.4445, -4.7750, 2.0315


def bf16(x):
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)


def newton_schulz(g, rounding, steps=5):
    x = rounding(g.astype(np.float32))
    x = rounding(x / (np.linalg.norm(x) + 1e-7))
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    for _ in range(steps):
        gram = rounding(x @ x.T)
        poly = rounding(B * gram + C * rounding(gram @ gram))
        x = rounding(A * x + rounding(poly @ x))
    return x.T if tall else x


rng = np.random.default_rng(0)
for shape in [(512, 512), (256, 512), (1024, 512), (512, 1024)]:
    low_rank = rng.standard_normal((shape[0], 8)) @ rng.standard_normal((8, shape[1])) * 3
    for kind, g in (("gaussian", rng.standard_normal(shape)), ("low-rank", low_rank + rng.standard_normal(shape))):
        exact, rounded = newton_schulz(g, lambda x: x), newton_schulz(g, bf16)
        s_exact, s_rounded = (np.linalg.svd(m, compute_uv=False) for m in (exact, rounded))
        cosine = (exact * rounded).sum() / np.linalg.norm(exact) / np.linalg.norm(rounded)
        print(f"{str(shape):12s} {kind:9s} norm bf16/fp32 {np.linalg.norm(rounded) / np.linalg.norm(exact):.4f}  "
              f"singular values fp32 {s_exact.min():.3f}..{s_exact.max():.3f} (mean {s_exact.mean():.3f}), "
              f"bf16 {s_rounded.min():.3f}..{s_rounded.max():.3f} (mean {s_rounded.mean():.3f})  cosine {cosine:.4f}")
