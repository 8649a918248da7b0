"""What a Parameter Golf submission's train_gpt.py does at evaluation time, with its weights in a pgolf
artifact: build the baseline's own model and run its own eval_val (train_gpt.py from the Parameter Golf
repository, imported, not copied), the state dict coming from the exported decoder.

  pgolf export-decoder -o pgolf_decode.py
  pgolf compress samples/base9 --profile python -o base9.pgz --code train_gpt.py --code pgolf_decode.py --budget 16000000
  python3 eval_artifact.py base9.pgz --train-gpt PATH/train_gpt.py --data DIR [--fp32] [--tokens N]

--data holds the *_val_*.bin shards and the tokenizer (*.model); the model's shape comes from train_gpt.py's
Hyperparameters (its environment variables). --fp32 evaluates without bf16 autocast (and without TF32), the
precision pgolf eval uses; without it, as the baseline does."""
import argparse, contextlib, glob, importlib.util, os, sys, time

import torch
import sentencepiece as spm

sys.path.insert(0, os.getcwd())
from pgolf_decode import decode  # noqa: E402  (the exported decoder, beside the script that ships)


def load_train_gpt(path):
    spec = importlib.util.spec_from_file_location('train_gpt', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its main() runs only as __main__
    return module


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('artifact')
    ap.add_argument('--train-gpt', required=True, help="the Parameter Golf baseline's train_gpt.py")
    ap.add_argument('--data', required=True, help='folder of *_val_*.bin shards and the tokenizer .model')
    ap.add_argument('--tokens', type=int, default=0, help='evaluate the first N tokens (default: the whole split)')
    ap.add_argument('--fp32', action='store_true', help='fp32 without autocast or TF32, as pgolf eval')
    a = ap.parse_args()

    pg = load_train_gpt(a.train_gpt)
    hp = pg.Hyperparameters()
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    model = pg.GPT(vocab_size=hp.vocab_size, num_layers=hp.num_layers, model_dim=hp.model_dim, num_heads=hp.num_heads,
                   num_kv_heads=hp.num_kv_heads, mlp_mult=hp.mlp_mult, tie_embeddings=hp.tie_embeddings,
                   tied_embed_init_std=hp.tied_embed_init_std, logit_softcap=hp.logit_softcap,
                   rope_base=hp.rope_base, qk_gain_init=hp.qk_gain_init).to(device)
    start = time.perf_counter()
    weights = decode(a.artifact)
    decode_seconds = time.perf_counter() - start
    model.load_state_dict({name: torch.from_numpy(w) for name, w in weights.items()}, strict=True)
    if a.fp32:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        torch.autocast = lambda *args, **kw: contextlib.nullcontext()  # eval_val asks for bf16 autocast
    else:  # as the baseline's main() prepares its model
        model = model.bfloat16()
        for module in model.modules():
            if isinstance(module, pg.CastedLinear):
                module.float()
        pg.restore_low_dim_params_to_fp32(model)

    val = pg.load_validation_tokens(os.path.join(a.data, '*_val_*.bin'), hp.train_seq_len)
    if a.tokens:
        val = val[:(a.tokens + hp.train_seq_len - 1) // hp.train_seq_len * hp.train_seq_len + 1]
    tokenizer = spm.SentencePieceProcessor(model_file=sorted(glob.glob(os.path.join(a.data, '*.model')))[0])
    luts = pg.build_sentencepiece_luts(tokenizer, hp.vocab_size, device)
    val_loss, val_bpb = pg.eval_val(hp, model, 0, 1, device, 8, val, *luts)
    print('decoded  %s: %d tensors in %.2f s' % (a.artifact, len(weights), decode_seconds))
    print('tokens   %d (%s)' % (val.numel() - 1, 'fp32' if a.fp32 else 'bf16 autocast'))
    print('val_loss %.6f' % val_loss)
    print('val_bpb  %.6f' % val_bpb)


if __name__ == '__main__':
    main()
