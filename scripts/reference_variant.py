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
    save-init   writes the weights training starts from (after the script's casts and this run's
                variants, float32) to init.pt in the working directory, for pgolf train --init
    none        the script as it is
"""
import importlib.util
import sys

import torch

path, variants = sys.argv[1], set(sys.argv[2].split(","))
unknown = variants - {"rope-fp32", "embed-fp32", "ns-fp32", "fp32", "no-tf32", "save-init", "none"}
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


train_gpt.restore_low_dim_params_to_fp32 = restore_and_undo
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
