"""``dslm finetune``: a DSL model started from an MDLM checkpoint (the paper's recipe).

    dslm finetune --from runs/mdlm [--config configs/owt-small-dsl-finetune.yaml] [key=value ...]
    dslm finetune --from kuleshov-group/mdlm-owt --config configs/owt-small-dsl-finetune.yaml

``--from`` takes a dslm MDLM checkpoint (or run folder) directly; anything else (a
hub-layout folder or repo id, MDLM's Lightning ``.ckpt``) is converted by
``dslm.models.checkpoint.open_checkpoint``. The backbone is copied and only what DSL adds is new
(``dslm.models.convert.dsl_from_mdlm``); the model section of the config sets only
the DSL fields (``embed_dim``, ``snr_max``, ...). Without ``--config`` the built-in
defaults are the paper's recipe: AdamW 3e-4, betas (0.9, 0.999), no weight decay,
constant lr, EMA 0.999, grad clip 1.0, mixed schedule (25% ROAR, mu 2.69, sigma 1.41).
"""

from __future__ import annotations

from dslm.commands.train import add_run_arguments, early_checks, report

HELP = "fine-tune a DSL model from an MDLM checkpoint (dslm folder, hub folder or id, .ckpt)"


def add_arguments(parser) -> None:
    parser.add_argument("--from", dest="source", required=True, metavar="CKPT",
                        help="MDLM checkpoint: dslm folder, hub-layout folder, repo id or .ckpt")
    parser.add_argument("--config", metavar="YAML",
                        help="run config (default: the paper's fine-tuning recipe)")
    parser.add_argument("--trust-checkpoint", "--trust-pickle", dest="trust_pickle", action="store_true",
                        help="allow full unpickling of a Lightning .ckpt you trust")
    add_run_arguments(parser)


def run(args) -> int:
    from dslm.config import to_dict
    from dslm.errors import ConfigError
    from dslm.train import train
    from dslm.train.config import load_run_config
    from dslm.train.starts import finetune_start

    cfg = load_run_config(args.config, args.overrides, args.out, args.resume)
    if cfg.model.kind != "dsl":
        raise ConfigError(f"dslm finetune trains a DSL model; config key 'model.kind' is "
                          f"'{cfg.model.kind}' (allowed: dsl)")
    early_checks(cfg, {"the --from checkpoint": args.source})
    model = finetune_start(args.source, to_dict(cfg.model), trust_pickle=args.trust_pickle)
    report(train(cfg, resume=args.resume, init_model=model, progress=not args.no_progress))
    return 0
