"""Denoising cross-entropy of DSL checkpoints on held-out blocks, under several SNR schedules.

    python scripts/compare_dsl_checkpoints.py CKPT [CKPT ...] [--blocks 64] [--seed 0]

Every checkpoint is scored on the same validation blocks with the same noise draws, on
non-revealed positions only (the quantity a sampler relies on), so checkpoints trained
with different objectives (e.g. ``train.loss_on_revealed``) are compared on equal terms:
  roar       masked-diffusion endpoint states (revealed tokens + zeros)
  lognormal  soft evidence everywhere (log s ~ N(mu, sigma^2))
  mixed      the training mixture
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dslm.data import prepare_data
from dslm.diffusion.losses import dsl_loss
from dslm.diffusion.schedules import ScheduleConfig
from dslm.models import checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpts", nargs="+")
    ap.add_argument("--blocks", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    opened = [checkpoint.open_checkpoint(c, expect_kind="dsl") for c in args.ckpts]
    models = [o.model for o in opened]
    data_cfg = opened[0].data_config()
    val = np.asarray(prepare_data(data_cfg).val[: args.blocks], dtype=np.int64)
    print(f"{len(val)} validation blocks of {val.shape[1]} tokens; CE in nats on non-revealed tokens")
    print(f"{'checkpoint':40s} {'roar':>8s} {'lognormal':>10s} {'mixed':>8s}")
    for path, model in zip(args.ckpts, models):
        row = []
        for name in ("roar", "lognormal", "mixed"):
            gen = torch.Generator().manual_seed(args.seed)
            total, terms = 0.0, 0.0
            with torch.no_grad():
                for i in range(0, len(val), args.batch_size):
                    out = dsl_loss(model, torch.from_numpy(val[i:i + args.batch_size]),
                                   ScheduleConfig(name=name), gen)
                    total += float(out.loss) * float(out.terms)
                    terms += float(out.terms)
            row.append(total / terms)
        print(f"{path:40s} {row[0]:8.4f} {row[1]:10.4f} {row[2]:8.4f}")


if __name__ == "__main__":
    main()
