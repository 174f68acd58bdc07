"""MDLM validation NELBO vs steps on one corpus, against the corpus's unigram entropy.

    python scripts/recipe_curves.py --corpus FILE [--config configs/tiny-mdlm.yaml]
        [--steps 600] [--out runs/recipe] [key=value ...]

Trains ``--config`` (default: the demo's MDLM recipe) on ``--corpus`` (``embedded``,
``synthetic`` or a .txt/.jsonl file) for ``--steps`` steps and prints one JSON line:
the validation NELBO (nats per token, EMA weights) at every ``train.eval_every`` step
and the unigram entropy ``H_1 = -sum_v p(v) log p(v)`` of the training blocks under the
same tokenisation. A model on the unigram plateau has NELBO ~ H_1: it predicts every
masked token from the token frequencies alone. docs/RECIPE.md reports these curves.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def _init_model(cfg, data, how: str):
    """The run's model with adaLN gates (and the output layer) given a small random init."""
    import torch
    from torch import nn

    from dslm.models import build_model

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model.resolved(int(data.tokenizer.vocab_size)))
    if how == "qkv-bias":            # a content-free key/query part: attention can find
        for block in model.backbone.blocks:      # neighbours by position before embeddings align
            old = block.attn_qkv
            block.attn_qkv = nn.Linear(old.in_features, old.out_features, bias=True)
            with torch.no_grad():
                block.attn_qkv.weight.copy_(old.weight)
                block.attn_qkv.bias.zero_()
        return model
    if how == "shared-embed":        # every token embedding shares one random direction
        emb = model.backbone.vocab_embed.embedding
        with torch.no_grad():
            emb += emb.std() * torch.randn(emb.shape[1])
        return model
    for block in model.backbone.blocks:
        nn.init.normal_(block.adaLN_modulation.weight, std=0.02)
    if how == "nonzero-all":
        nn.init.normal_(model.backbone.output_layer.linear.weight, std=0.02)
    return model


def main(argv: list[str] | None = None) -> int:
    from dslm.data.prepare import prepare_data
    from dslm.train import train
    from dslm.train.config import load_run_config
    from dslm.train.unigram import token_counts, unigram_entropy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="embedded")
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "tiny-mdlm.yaml"))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", default="runs/recipe")
    parser.add_argument("--tag", default="")
    parser.add_argument("--init", default="", choices=["", "nonzero-gates", "nonzero-all", "qkv-bias", "shared-embed"],
                        help="experiment: replace adaLN-zero (gates, and the output layer with "
                             "nonzero-all) by a small random init")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(argv)

    overrides = [f"data.source={args.corpus}", f"train.steps={args.steps}",
                 "train.checkpoint_every=0", *args.overrides]
    cfg = load_run_config(args.config, overrides, out_dir=args.out)
    data = prepare_data(cfg.data, progress=False)
    h1 = unigram_entropy(token_counts(data.train, data.tokenizer.vocab_size))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    train(cfg, progress=False, init_model=_init_model(cfg, data, args.init) if args.init else None)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    records = [json.loads(line) for line in (Path(args.out) / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], round(r["val_loss"], 3)) for r in records if "val_loss" in r]
    plateau = [(r["step"], round(r["val_unigram"], 3)) for r in records if "val_unigram" in r]
    print(json.dumps({"tag": args.tag, "corpus": args.corpus, "overrides": args.overrides,
                      "unigram_entropy": round(h1, 3), "curve": curve,
                      "unigram_model_curve": plateau,
                      "train_tokens": int(data.train.size),
                      "cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1),
                      "wall_s": round(time.perf_counter() - wall0, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
