"""``dslm train``: train a DSL, MDLM or AR model from a run config.

    dslm train --config configs/tiny-dsl.yaml [--out DIR] [--resume] [key=value ...]
    dslm train --config configs/tiny-mdlm.yaml --init runs/mdlm train.steps=500   # more steps
    torchrun --nproc_per_node 4 -m dslm train --config ...                       # DDP
"""

from __future__ import annotations

import os

HELP = "train a DSL, MDLM or AR model from a YAML run config (one process or under torchrun)"


def add_run_arguments(parser) -> None:
    """Options shared by ``dslm train`` and ``dslm finetune``."""
    parser.add_argument("--out", metavar="DIR", help="run folder (overrides train.out_dir)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run saved in the run folder exactly")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.lr=1e-3 model.n_blocks=6")


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="YAML",
                        help="run config (configs/*.yaml); default: <out>/run.yaml with --resume, "
                             "the checkpoint's own run config with --init")
    parser.add_argument("--init", metavar="CKPT",
                        help="start from this checkpoint of the same kind (fresh optimizer)")
    add_run_arguments(parser)


def report(result) -> None:
    """Print where the run went (rank 0 only)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    val = result.metrics.get("val_loss")
    shown = f", val_loss {val:.4f}" if isinstance(val, float) else ""
    print(f"trained {result.step} steps{shown}; checkpoint: {result.checkpoint}")


def early_checks(cfg, inputs: dict) -> None:
    """Before loading a starting model: the run folder is writable and none of the inputs
    (the rest, and the lock, follow in ``dslm.train.state.preflight``)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    from pathlib import Path

    from dslm.io import check_disjoint, check_output_folder
    from dslm.models.checkpoint import resolve

    resolved = {}
    for name, path in inputs.items():
        if path and Path(path).exists():
            ckpt = resolve(path)
            resolved[name] = ckpt
            if ckpt.name in ("checkpoint", "checkpoint.old"):
                resolved[name + "'s run folder"] = ckpt.parent
    check_disjoint(cfg.train.out_dir, resolved, what="the run folder (--out)")
    check_output_folder(cfg.train.out_dir)


def run(args) -> int:
    from dslm.train import train
    from dslm.train.config import load_run_config
    from dslm.models.checkpoint import open_checkpoint

    base = open_checkpoint(args.init, weights=False).run_config() if args.init and not args.config else None
    cfg = load_run_config(args.config, args.overrides, args.out, args.resume, base=base)
    early_checks(cfg, {"the --init checkpoint": args.init})
    init = open_checkpoint(args.init, expect_kind=cfg.model.kind) if args.init else None
    report(train(cfg, resume=args.resume, init_model=init, progress=not args.no_progress))
    return 0
