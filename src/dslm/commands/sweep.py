"""``dslm sweep``: quality vs compute over models x samplers x step budgets."""

from __future__ import annotations

DEFAULT_STEPS = (8, 16, 32, 64, 128)

HELP = "sweep samplers and step budgets: sweep.json, sweep.md (table), sweep.png (MAUVE and gen PPL vs NFE)"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_arguments(p) -> None:
    from dslm.commands._checks import add_checkpoint_arguments

    add_checkpoint_arguments(p, action="append", default=[], metavar="[LABEL=]PATH",
                             what="a model to sweep (repeatable; LABEL names its rows)")
    p.add_argument("--ar-baseline", default="", metavar="CKPT",
                   help="AR checkpoint: sampled as the baseline line, and the default judge")
    p.add_argument("--samplers", default=None, help="comma-separated sampler names")
    p.add_argument("--steps", default=None, help="comma-separated step budgets T, e.g. 8,16,32")
    p.add_argument("--extra", action="append", default=None, metavar="SAMPLER:T",
                   help="a point outside the grid, e.g. hybrid:48 (repeatable)")
    p.add_argument("--num-samples", type=int, default=None, help="samples per point (default 64)")
    p.add_argument("--seq-len", type=int, default=None, help="sample length (default: the model's)")
    p.add_argument("--judge", default=None,
                   help="gen-PPL judge: smollm2-135m, an AR checkpoint or an HF causal LM (default: "
                        "smollm2-135m when installed, else --ar-baseline as a recorded fallback)")
    p.add_argument("--featurizer", default=None,
                   help="MAUVE featurizer: all-minilm-l6-v2, 'judge' or a causal LM (default: "
                        "all-minilm-l6-v2 when installed, else the judge)")
    p.add_argument("--reference", default=None,
                   help="'validation' (the first model's held-out data) or a .txt/.jsonl file")
    p.add_argument("--config", default=None, metavar="YAML",
                   help="a sweep file of SweepConfig keys (e.g. configs/sweeps/owt-protocol.yaml); "
                        "explicit flags override it")
    p.add_argument("--protocol", choices=["owt"], default=None,
                   help="the paper's OpenWebText protocol, configs/sweeps/owt-protocol.yaml "
                        "(5000 x 1024 tokens, GPT-2 Large, T=128..1024 + hybrid T=48)")
    p.add_argument("--sampler-option", action="append", default=[], metavar="SAMPLER.KEY=VALUE",
                   help="an option passed to one sampler, e.g. remdm-loop.eta=0.04 (repeatable)")
    p.add_argument("--seed", type=int, default=0,
                   help="sampling and reference-draw seed (torchrun rank r derives its own)")
    p.add_argument("--batch-size", type=int, default=0, help="sampling batch size (0: sampler default)")
    p.add_argument("--eval-batch-size", type=int, default=8, help="judge/featurizer batch size")
    p.add_argument("--device", default="", help="cpu, cuda ... (default: cuda if available)")
    p.add_argument("--out", required=True, help="results folder, e.g. results/<run>")


def parse_models(values: list[str]) -> list[tuple[str, str]]:
    """``[LABEL=]PATH`` strings -> (label, path); the label defaults to the folder name."""
    from pathlib import Path

    out = []
    for v in values:
        label, sep, path = v.partition("=")
        if not sep:
            path = v
            p = Path(v.rstrip("/"))
            label = p.parent.name if p.name == "checkpoint" and p.parent.name else p.name
        out.append((label, path))
    return out


def build_config(args):
    """The SweepConfig of the parsed arguments (a sweep file or protocol first, then flags)."""
    import dataclasses

    from dslm.config import parse_overrides
    from dslm.errors import ConfigError
    from dslm.evaluate.protocol import apply_protocol, apply_sweep_file
    from dslm.evaluate.sweep import SweepConfig

    flags = {"samplers": _csv(args.samplers) if args.samplers is not None else None,
             "extra_points": args.extra, "num_samples": args.num_samples,
             "seq_len": args.seq_len, "judge": args.judge, "featurizer": args.featurizer,
             "reference": args.reference}
    if args.steps is not None:
        try:
            flags["steps"] = [int(t) for t in _csv(args.steps)]
        except ValueError:
            raise ConfigError(f"--steps must be comma-separated integers, got '{args.steps}'") from None
    given = {k: v for k, v in flags.items() if v is not None}
    cfg = SweepConfig(models=parse_models(args.ckpt), samplers=[], steps=list(DEFAULT_STEPS),
                      out=args.out,
                      seed=args.seed, batch_size=args.batch_size, ar_baseline=args.ar_baseline,
                      eval_batch_size=args.eval_batch_size, device=args.device,
                      sampler_options=parse_overrides(args.sampler_option),
                      trust_checkpoint=args.trust_checkpoint)
    if args.protocol:
        cfg = apply_protocol(cfg, args.protocol)
    if args.config:
        cfg = apply_sweep_file(cfg, args.config)
    return dataclasses.replace(cfg, **given)


def run(args) -> int:
    from dslm.evaluate.report import markdown_table
    from dslm.evaluate.sweep import run_sweep

    doc = run_sweep(build_config(args), progress=True)
    if doc:
        print(markdown_table(doc))
        print(f"wrote {args.out}/sweep.json, sweep.md, sweep.png")
    return 0
