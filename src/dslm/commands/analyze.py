"""`dslm analyze calibration|self-correction`: the paper's analyses (docs/ANALYSES.md)."""

from __future__ import annotations

import os

HELP = "calibration (ECE, reliability diagrams) and self-correction of denoisers"


def _common(p) -> None:
    p.add_argument("--ckpt", action="append", required=True, metavar="[LABEL=]DIR",
                   help="an MDLM or DSL checkpoint (repeatable; all must share the tokenizer)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 (default cpu)")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    c = sub.add_parser("calibration", help="ECE and reliability diagrams of token predictions",
                       description="ECE and reliability diagrams of the denoiser's token "
                                   "predictions on held-out blocks, per corruption level")
    _common(c)
    c.add_argument("--data", default="validation",
                   help="held-out text: 'validation' (the first checkpoint's data) or a .txt/.jsonl")
    c.add_argument("--blocks", type=int, default=32, help="held-out blocks (default 32)")
    c.add_argument("--bins", type=int, default=15, help="confidence bins (default 15)")
    c.add_argument("--binning", choices=("width", "mass"), default="width",
                   help="equal-width (default) or equal-mass bins")
    c.add_argument("--levels", default=None,
                   help="corruption levels, e.g. mask:0.1,mask:0.5,snr:4 (default: masked "
                        "fractions 0.1..0.9, plus SNR medians 1, 4, 15, 60 for DSL)")
    s = sub.add_parser("self-correction", help="remask/re-decode counts in ReMDM-loop sampling",
                       description="in ReMDM-loop sampling per step budget: remasks, changes on "
                                   "re-decode, the judge's view of the changes, wrong tokens")
    _common(s)
    s.add_argument("--judge", default=None,
                   help="causal LM judging changes: smollm2-135m, a dslm AR checkpoint or a HF name/folder")
    s.add_argument("--reference", default=None,
                   help="dslm checkpoint (same tokenizer) defining wrong tokens "
                        "(default: the judge if it is a dslm checkpoint)")
    s.add_argument("--steps", default="8,16,32", help="step budgets T (default 8,16,32)")
    s.add_argument("--num-samples", type=int, default=8, help="samples per model and T (default 8)")
    s.add_argument("--wrong-rank", type=int, default=10,
                   help="a token is wrong when the reference ranks it below this (default 10)")
    s.add_argument("--max-judged", type=int, default=None,
                   help="judge at most this many changes per model and T (a seeded subset)")
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a loop sampler option, e.g. eta=0.05 (repeatable)")


def _models(specs, device):
    """({label: model}, {label: source}, the shared tokenizer, its spec) of ``--ckpt [LABEL=]DIR``s."""
    from dslm.errors import DSLMError
    from dslm.models.checkpoint import open_checkpoint

    opened, sources = {}, {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            label, path = spec.rstrip("/").split("/")[-1] or spec, spec
        if label in opened:
            raise DSLMError(f"two checkpoints labelled '{label}'; use LABEL=DIR")
        opened[label], sources[label] = open_checkpoint(path, device), path
    first = next(iter(opened))
    for label, ck in opened.items():
        if ck.tokenizer_spec != opened[first].tokenizer_spec:
            raise DSLMError(f"checkpoints '{first}' and '{label}' use different tokenizers")
    head = opened[first]
    tokenizer = head.tokenizer() if head.tokenizer_spec is not None else None
    return {k: ck.model for k, ck in opened.items()}, sources, tokenizer, head.tokenizer_spec


def run(args) -> int:
    from dslm.commands._checks import seed
    from dslm.io import check_disjoint, check_output_folder
    from dslm.locks import folder_lock

    seed("--seed", args.seed)
    inputs = {f"checkpoint {c}": c.partition("=")[2] or c for c in args.ckpt}
    for key in ("data", "judge", "reference"):
        value = getattr(args, key, None)
        if value is not None and os.path.exists(value):
            inputs[f"--{key}"] = value
    check_disjoint(args.out, inputs)
    check_output_folder(args.out)
    with folder_lock(args.out):
        return _run(args)


def _run(args) -> int:
    from dslm.commands._checks import bounded
    from dslm.errors import DSLMError

    models, sources, tokenizer, tokenizer_spec = _models(args.ckpt, args.device)
    first = next(iter(sources.values()))
    if args.analysis == "calibration":
        from dslm.analyze import held_out_blocks
        from dslm.analyze import calibration as cal

        bounded("--blocks", args.blocks)
        bounded("--bins", args.bins, 1, 1000)
        if tokenizer is None and args.data != "validation":
            raise DSLMError(f"checkpoint {first} records no tokenizer to encode {args.data}")
        seq_len = min(int(m.config.seq_len) for m in models.values())
        blocks = held_out_blocks(args.data, tokenizer, seq_len, args.blocks, args.seed, first)
        levels = cal.parse_levels(args.levels) if args.levels else None
        result = cal.calibration(models, blocks, levels, args.seed, args.bins, args.binning)
        paths = cal.write(result, args.out)
        print(cal.markdown(result))
    else:
        from dslm.analyze import judge_log_likelihood
        from dslm.analyze import selfcorrection as sc
        from dslm.config import parse_overrides
        from dslm.models.checkpoint import open_checkpoint

        bounded("--num-samples", args.num_samples)
        bounded("--wrong-rank", args.wrong_rank)
        bounded("--max-judged", args.max_judged, allow_none=True)
        try:
            steps = [int(t) for t in args.steps.split(",") if t.strip()]
        except ValueError:
            raise DSLMError(f"--steps must be integers separated by commas, got '{args.steps}'") from None
        for t in steps:
            bounded("--steps", t)
        if tokenizer is None:
            raise DSLMError(f"checkpoint {first} records no tokenizer; self-correction judges texts")
        judge_ll = reference = None
        ref_spec = args.reference
        if args.judge is not None:
            from dslm.models.checkpoint import is_dslm_checkpoint
            from dslm.evaluate.judges import load_named

            judge_ll = judge_log_likelihood(load_named(args.judge, args.device))
            if ref_spec is None and is_dslm_checkpoint(args.judge):
                ref_spec = args.judge
        if ref_spec is not None:
            ref = open_checkpoint(ref_spec, args.device)
            reference = ref.model
            if ref.tokenizer_spec != tokenizer_spec:
                raise DSLMError(f"reference {ref_spec} uses a different tokenizer from the models")
        rows = sc.self_correction(models, tokenizer, steps, args.num_samples, args.seed, judge_ll,
                                  reference, args.wrong_rank, max_judged=args.max_judged,
                                  **parse_overrides(args.option))
        paths = sc.write(rows, args.out)
        print(sc.markdown(rows))
    print("wrote " + ", ".join(paths.values()))
    return 0
