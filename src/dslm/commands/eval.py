"""``dslm eval``: MAUVE, generative perplexity, entropy and repetition of a samples file."""

from __future__ import annotations

HELP = "score a samples JSONL: MAUVE, generative perplexity, unigram entropy, repetition"


def add_arguments(p) -> None:
    p.add_argument("--samples", required=True, help="samples JSONL written by 'dslm sample'")
    p.add_argument("--reference", default="validation",
                   help="'validation' (held-out data of --model's corpus) or a .txt/.jsonl file")
    p.add_argument("--judge", default="gpt2-large",
                   help="generative-perplexity judge: a dslm AR checkpoint or a Hugging Face "
                        "causal LM name/folder (default gpt2-large, needs the hub)")
    p.add_argument("--featurizer", default=None,
                   help="MAUVE features from this causal LM (default: the judge)")
    from dslm.commands._checks import add_checkpoint_arguments

    add_checkpoint_arguments(p, "--model", default=None,
                             what="the checkpoint that produced the samples (its tokenizer lets an "
                                  "AR judge read the token ids as they are, its data config gives "
                                  "'validation')")
    p.add_argument("--num-reference", type=int, default=0,
                   help="reference texts to draw (default: as many as samples)")
    p.add_argument("--seed", type=int, default=0, help="seed of the reference draw")
    p.add_argument("--batch-size", type=int, default=8, help="judge/featurizer batch size")
    p.add_argument("--device", default="", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--no-mauve", action="store_true", help="skip MAUVE (no featurizer, no reference)")
    p.add_argument("--out", default="metrics.json", help="where to write the metrics JSON")


def _summary(records: list[dict]) -> dict:
    """Sampler, steps, NFE and seed of the file when all records agree on them."""
    out = {}
    for key in ("sampler", "steps", "nfe", "seed"):
        values = {r.get(key) for r in records}
        if len(values) == 1 and None not in values:
            out[key] = values.pop()
    return out


def _preflight(args) -> None:
    """Every argument, input and the output, checked before loading any model."""
    from pathlib import Path

    from dslm.commands._checks import (bounded, check_model_spec, check_reference,
                                       require_tokenizer_packages, seed)
    from dslm.errors import DataError
    from dslm.extras import require
    from dslm.io import check_disjoint, check_output_file

    bounded("--batch-size", args.batch_size)
    bounded("--num-reference", args.num_reference, low=0)
    seed("--seed", args.seed)
    if not Path(args.samples).is_file():
        raise DataError(f"file not found: {args.samples}")
    check_disjoint(args.out, {"the samples file": args.samples, "--model": args.model,
                              "the judge": args.judge, "the featurizer": args.featurizer,
                              "the reference": None if args.reference == "validation"
                              else args.reference}, what="--out")
    check_output_file(args.out)
    check_model_spec(args.judge, "the judge")
    if not args.no_mauve:
        require("mauve", "MAUVE (or pass --no-mauve)")
        require("faiss", "MAUVE's clustering (or pass --no-mauve)")
        check_model_spec(args.featurizer or "", "the featurizer")
        check_reference(args.reference)
        if args.reference == "validation" and not args.model:
            raise DataError("--reference validation needs a dslm checkpoint whose data config "
                            "names the corpus (--model), or pass a .txt/.jsonl file")
        if args.reference == "validation":
            require("datasets", "--reference validation (corpus preparation)")
    for spec in (args.model, args.judge):
        if spec:
            require_tokenizer_packages(spec, "dslm eval")


def run(args) -> int:
    from dslm.evaluate.lm import load_lm
    from dslm.evaluate.metrics import Evaluator
    from dslm.evaluate.reference import load_reference
    from dslm.evaluate.samples import read_samples
    from dslm.io import atomic_write_json
    from dslm.locks import folder_lock
    from dslm.processes import resolve_device
    from dslm.provenance import environment, identity
    from dslm.repro import reproducible

    _preflight(args)
    records = read_samples(args.samples)
    texts = [r["text"] for r in records]
    has_tokens = all(isinstance(r.get("tokens"), list) for r in records)
    tokens = [r["tokens"] for r in records] if has_tokens else None
    opened = None
    if args.model:
        from dslm.models.checkpoint import open_checkpoint

        opened = open_checkpoint(args.model, weights=False, trust_pickle=args.trust_checkpoint)
    spec = opened.tokenizer_spec if opened is not None else None
    device = resolve_device(args.device, what="--device")
    with folder_lock(args.out, kind="file"), reproducible(True, 0, device.type):
        judge = load_lm(args.judge, device)
        featurizer = None
        reference = None
        if not args.no_mauve:
            fspec = args.featurizer or args.judge
            featurizer = judge if fspec == args.judge else load_lm(fspec, device)
            reference = load_reference(args.reference, args.num_reference or len(texts), args.seed,
                                       checkpoint=opened)
        evaluator = Evaluator(judge, featurizer, reference, args.batch_size, progress=True)
        metrics = evaluator.evaluate(texts, tokens, spec)
        doc = {"samples": str(args.samples), **_summary(records), "metrics": metrics,
               "settings": {**evaluator.settings(), "reference_seed": args.seed,
                            "reference": None if args.no_mauve else args.reference},
               "provenance": {"samples": identity(args.samples), "judge": identity(args.judge),
                              "featurizer": identity(args.featurizer or args.judge),
                              "model": identity(args.model),
                              "reference": identity(None if args.no_mauve else args.reference)},
               "environment": environment()}
        atomic_write_json(args.out, doc)
    shown = {k: metrics[k] for k in ("mauve", "gen_ppl", "entropy", "distinct_4") if k in metrics}
    print("  ".join(f"{k}={v:.4g}" for k, v in shown.items()))
    print(f"wrote {args.out}")
    return 0
