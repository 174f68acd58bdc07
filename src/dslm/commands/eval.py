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
    p.add_argument("--model", default=None,
                   help="checkpoint that produced the samples: its tokenizer lets an AR judge read "
                        "the token ids as they are, its data config gives 'validation'")
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


def run(args) -> int:
    import torch

    from dslm.evaluate.lm import load_lm
    from dslm.evaluate.metrics import Evaluator
    from dslm.evaluate.reference import load_reference
    from dslm.evaluate.samples import read_samples
    from dslm.io import atomic_write_json

    records = read_samples(args.samples)
    texts = [r["text"] for r in records]
    has_tokens = all(isinstance(r.get("tokens"), list) for r in records)
    tokens = [r["tokens"] for r in records] if has_tokens else None
    spec = None
    if args.model:
        from dslm.models.checkpoint import read_config

        spec = (read_config(args.model).get("metadata") or {}).get("tokenizer")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    judge = load_lm(args.judge, device)
    featurizer = None
    reference = None
    if not args.no_mauve:
        fspec = args.featurizer or args.judge
        featurizer = judge if fspec == args.judge else load_lm(fspec, device)
        reference = load_reference(args.reference, args.num_reference or len(texts), args.seed,
                                   checkpoint=args.model)
    evaluator = Evaluator(judge, featurizer, reference, args.batch_size, progress=True)
    metrics = evaluator.evaluate(texts, tokens, spec)
    doc = {"samples": str(args.samples), **_summary(records), "metrics": metrics,
           "settings": {**evaluator.settings(), "reference_seed": args.seed,
                        "reference": None if args.no_mauve else args.reference}}
    atomic_write_json(args.out, doc)
    shown = {k: metrics[k] for k in ("mauve", "gen_ppl", "entropy", "distinct_4") if k in metrics}
    print("  ".join(f"{k}={v:.4g}" for k, v in shown.items()))
    print(f"wrote {args.out}")
    return 0
