"""Runs the Parameter Golf baseline's train_gpt.py with some of its bf16 storage choices undone, to
measure which of them move its training (issue 35, scripts/gpu.sh fidelity). The script is loaded
as a module and one of its functions wrapped; nothing of it is copied or edited.

  python3 scripts/reference_variant.py TRAIN_GPT VARIANT[,VARIANT...]
    rope-fp32   Rotary's inv_freq stays float32 (the script's model.bfloat16() makes it bf16, so its
                RoPE positions and angles are bf16)
    embed-fp32  tok_emb.weight stays float32 (bf16 in the script: weights, gradient, Adam moments,
                and so the residual stream too)
    ns-fp32     Muon's Newton-Schulz iteration in float32 (the script's runs in bf16, every product
                rounded); its update is still stored in bf16 as the script stores it
    fp32        the whole model in float32: every parameter and buffer back to float32 after the
                script's bf16 cast (inv_freq recomputed exactly) and autocast off (matmuls in TF32, as
                the script allows); with ns-fp32 nothing of the script runs in bf16 but Muon's stored update
    no-tf32     float32 matmuls in full float32 (the script allows TF32)
    update-fp32 Muon's flat update buffer in float32 (the script stores each update in bf16 before it is
                added to the weights)
    cpu         on the CPU, under Debian's torch (1.13, no CUDA): CUDA's calls become no-ops, and what
                the script takes from torch 2 (torch.compile, F.rms_norm, F.scaled_dot_product_attention,
                uint16 arrays, fused Adam) gets the same math in 1.13's ops; for the fp32 twin on the
                CPU against pgolf's CPU reference (scripts/twin_cpu.sh)
    save-init   writes the weights training starts from (after the script's casts and this run's
                variants, float32) to init.pt in the working directory, for pgolf train --init
    none        the script as it is
"""
import contextlib
import importlib.util
import math
import subprocess
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

path, variants = sys.argv[1], set(sys.argv[2].split(","))
unknown = variants - {"rope-fp32", "embed-fp32", "ns-fp32", "update-fp32", "fp32", "no-tf32", "cpu", "save-init",
                      "none"}
if unknown:
    sys.exit(f"reference_variant: unknown variant {sorted(unknown)}")
spec = importlib.util.spec_from_file_location("train_gpt", path)
train_gpt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_gpt)
restore = train_gpt.restore_low_dim_params_to_fp32


# main() calls this once, right after model.bfloat16(): the place to undo a cast.
def restore_and_undo(model):
    restore(model)
    if "fp32" in variants:
        model.float()
        for module in model.modules():
            if isinstance(module, train_gpt.Rotary):  # its bf16 cast rounded inv_freq: recomputed as built
                dim = 2 * module.inv_freq.numel()
                base = float(train_gpt.Hyperparameters.rope_base)
                exact = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
                module.inv_freq = exact.to(module.inv_freq.device)
    for module in model.modules():
        if "rope-fp32" in variants and isinstance(module, train_gpt.Rotary):
            module.inv_freq = module.inv_freq.float()
    if "embed-fp32" in variants:
        model.tok_emb.float()
    if "no-tf32" in variants:  # main() turned TF32 on before it built the model
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if "save-init" in variants:  # the warm-up steps are rewound to these weights, so training starts here
        torch.save({name: t.detach().float().cpu().contiguous() for name, t in model.state_dict().items()}, "init.pt")
    print(f"reference_variant: {sorted(variants)}: inv_freq {model.blocks[0].attn.rotary.inv_freq.dtype}, "
          f"tok_emb {model.tok_emb.weight.dtype}", flush=True)


# Muon's orthogonalisation, the same quintic iteration and coefficients (Muon's published ones), kept
# in float32 throughout; Muon.step looks the function up in the module when it runs.
def newton_schulz_float32(g, steps, eps=1e-7):
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.float()
    x = x / (x.norm() + eps)
    wide = x.size(0) <= x.size(1)
    x = x if wide else x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if wide else x.T


class Overlay(types.SimpleNamespace):
    """A module as the script sees it: these names replaced, the rest the module's own."""

    def __init__(self, module, **replaced):
        super().__init__(**replaced)
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)


def rms_norm(x, shape, weight=None, eps=None):  # torch 2's F.rms_norm: float32 math, the input's epsilon
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    y = x.float()
    return (y * torch.rsqrt(y.square().mean(-1, keepdim=True) + eps)).to(x.dtype)


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, enable_gqa=False):
    # torch 2's, as the script calls it: causal, no mask, scale 1/sqrt(head_dim), query head h reading KV head
    # h // (heads / kv_heads)
    group = q.size(-3) // k.size(-3)
    k, v = k.repeat_interleave(group, dim=-3), v.repeat_interleave(group, dim=-3)
    scores = (q @ k.transpose(-2, -1)).float() / math.sqrt(q.size(-1))
    n = q.size(-2)
    scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(scores, dim=-1).to(v.dtype) @ v


def on_cpu():
    noop = lambda *args, **kwargs: None
    for name in ("enable_cudnn_sdp", "enable_flash_sdp", "enable_mem_efficient_sdp", "enable_math_sdp"):
        setattr(torch.backends.cuda, name, noop)  # main() imports these from the module itself
    cuda = Overlay(torch.cuda, is_available=lambda: True, set_device=noop, synchronize=noop, manual_seed_all=noop,
                   max_memory_allocated=lambda: 0, max_memory_reserved=lambda: 0)
    train_gpt.torch = Overlay(
        torch, cuda=cuda, device=lambda *args: torch.device("cpu"), compile=lambda f, **kwargs: f,
        autocast=lambda device_type, **kwargs: torch.autocast("cpu", **kwargs),  # as fp32 leaves it
        optim=Overlay(torch.optim, Adam=lambda *args, fused=False, **kwargs: torch.optim.Adam(*args, **kwargs)),
        from_numpy=lambda a: torch.from_numpy(a.astype(np.int32) if a.dtype == np.uint16 else a))
    train_gpt.F = Overlay(F, rms_norm=rms_norm, scaled_dot_product_attention=scaled_dot_product_attention)
    train_gpt.subprocess = Overlay(subprocess, run=lambda *args, **kwargs: types.SimpleNamespace(stdout=""))


train_gpt.restore_low_dim_params_to_fp32 = restore_and_undo
if "cpu" in variants:
    on_cpu()
if "update-fp32" in variants:  # Muon.step's one bf16 buffer (its flat update) made float32
    script_torch = train_gpt.torch
    train_gpt.torch = Overlay(script_torch, zeros=lambda *args, dtype=None, **kwargs: script_torch.zeros(
        *args, dtype=torch.float32 if dtype == torch.bfloat16 else dtype, **kwargs))
if "fp32" in variants:  # the script enters torch.autocast(..., enabled=True) around every forward
    autocast = torch.autocast
    torch.autocast = lambda *args, **kwargs: autocast(*args, **{**kwargs, "enabled": False})
    # It allows flash attention alone, which takes no float32: the memory-efficient kernel stays on.
    enable_mem_efficient_sdp = torch.backends.cuda.enable_mem_efficient_sdp
    torch.backends.cuda.enable_mem_efficient_sdp = lambda enabled: enable_mem_efficient_sdp(True)
if "ns-fp32" in variants:
    train_gpt.zeropower_via_newtonschulz5 = newton_schulz_float32
    print("reference_variant: Newton-Schulz in float32", flush=True)
train_gpt.main()
