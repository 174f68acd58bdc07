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

import numpy as np


def unigram_entropy(blocks: np.ndarray, vocab_size: int) -> float:
    """``H_1`` in nats of the token distribution of ``blocks`` [N, L] (EOS included)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(blocks), 4096):
        counts += np.bincount(np.asarray(blocks[start:start + 4096]).ravel(), minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _init_model(cfg, data, how: str):
    """The run's model with adaLN gates (and the output layer) given a small random init."""
    import torch
    from torch import nn

    from dslm.models import build_model

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model.resolved(int(data.tokenizer.vocab_size)))
    for block in model.backbone.blocks:
        nn.init.normal_(block.adaLN_modulation.weight, std=0.02)
    if how == "nonzero-all":
        nn.init.normal_(model.backbone.output_layer.linear.weight, std=0.02)
    return model


def _flat_training_weight(how: str) -> None:
    """Train on the masked-token mean CE (validation, under no_grad, keeps the NELBO)."""
    import torch

    import dslm.train.objectives as objectives
    from dslm.diffusion.losses import LossOutput, mdlm_loss
    from dslm.diffusion.schedules import LogLinearSchedule

    def loss(model, x0, generator=None):
        if not torch.is_grad_enabled():
            return mdlm_loss(model, x0, generator)
        schedule = LogLinearSchedule()
        t = LogLinearSchedule.sample_t(x0.shape[0], generator, x0.device)
        masked = torch.rand(x0.shape, generator=generator, device=x0.device) < schedule.move_chance(t)[:, None]
        xt = torch.where(masked, torch.full_like(x0, model.mask_id), x0)
        nll = -model(xt, schedule.sigma(t)).gather(-1, x0.unsqueeze(-1)).squeeze(-1) * masked.float()
        terms = masked.float().sum().clamp_min(1.0)
        if how == "sequence":
            per_seq = nll.sum(-1) / masked.float().sum(-1).clamp_min(1.0)
            return LossOutput(per_seq.mean(), (nll.sum() / terms).detach(), terms.detach())
        return LossOutput(nll.sum() / terms, (nll.sum() / terms).detach(), terms.detach())
    objectives.mdlm_loss = loss


def main(argv: list[str] | None = None) -> int:
    from dslm.data.prepare import prepare_data
    from dslm.train import train
    from dslm.train.config import load_run_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="embedded")
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "tiny-mdlm.yaml"))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", default="runs/recipe")
    parser.add_argument("--tag", default="")
    parser.add_argument("--init", default="", choices=["", "nonzero-gates", "nonzero-all"],
                        help="experiment: replace adaLN-zero (gates, and the output layer with "
                             "nonzero-all) by a small random init")
    parser.add_argument("--weight", default="nelbo", choices=["nelbo", "flat", "sequence"],
                        help="experiment: training weight of the masked-token CE (validation "
                             "always reports the NELBO); flat = mean CE over masked tokens")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args(argv)

    overrides = [f"data.source={args.corpus}", f"train.steps={args.steps}",
                 "train.checkpoint_every=0", *args.overrides]
    cfg = load_run_config(args.config, overrides, out_dir=args.out)
    data = prepare_data(cfg.data, progress=False)
    h1 = unigram_entropy(data.train, data.tokenizer.vocab_size)
    if args.weight != "nelbo":
        _flat_training_weight(args.weight)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    train(cfg, progress=False, init_model=_init_model(cfg, data, args.init) if args.init else None)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    records = [json.loads(line) for line in (Path(args.out) / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], round(r["val_loss"], 3)) for r in records if "val_loss" in r]
    print(json.dumps({"tag": args.tag, "corpus": args.corpus, "overrides": args.overrides,
                      "unigram_entropy": round(h1, 3), "curve": curve,
                      "train_tokens": int(data.train.size),
                      "cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1),
                      "wall_s": round(time.perf_counter() - wall0, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
