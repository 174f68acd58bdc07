"""`dslm sample`: draw sequences from a checkpoint with a named sampler, one JSON line each."""

from __future__ import annotations

HELP = "draw samples from a checkpoint with a named sampler (JSON lines out)"


def add_arguments(parser) -> None:
    parser.add_argument("--ckpt", required=True, help="dslm checkpoint or training run folder")
    parser.add_argument("--sampler", required=True,
                        help="sampler name (mdlm, remdm-loop, roar-ar, dsl-continuous, hybrid, ar, ...)")
    parser.add_argument("--steps", type=int, required=True, help="step budget T (network calls)")
    parser.add_argument("--num-samples", type=int, default=16, help="number of sequences (default 16)")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="tokens per sequence (default: the model's length)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="sequences per batch (default: all at once)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--prompt", default=None, help="text every sample starts with")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a sampler option, e.g. eta=0.02 or top_p=0.9 (repeatable)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    parser.add_argument("--out", required=True, help="output file (.jsonl)")


def _device(name: str):
    import torch

    from dslm.errors import SamplingError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SamplingError(f"unknown device '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SamplingError(f"device '{name}' asked for, but CUDA is not available")
    return device


def _tokenizer(model):
    """The checkpoint's tokenizer, or None when its metadata records none."""
    if not isinstance(getattr(model, "checkpoint_metadata", {}).get("tokenizer"), dict):
        return None
    from dslm.data.tokenizers import tokenizer_from_checkpoint

    return tokenizer_from_checkpoint(model.checkpoint_path)


def run(args) -> int:
    import json
    import time

    import torch

    from dslm.config import parse_overrides
    from dslm.errors import SamplingError
    from dslm.io import atomic_write_text
    from dslm.models.checkpoint import load
    from dslm.sampling import get_sampler, sample, sampler_options

    get_sampler(args.sampler)
    options = parse_overrides(args.option)
    sampler_options(args.sampler, options)           # unknown option -> error before loading
    if args.steps < 1:
        raise SamplingError(f"--steps must be a positive integer, got {args.steps}")
    model = load(args.ckpt, map_location=_device(args.device))
    tokenizer = _tokenizer(model)
    prefix = None
    if args.prompt is not None:
        if tokenizer is None:
            raise SamplingError(f"--prompt needs a tokenizer, and checkpoint {model.checkpoint_path} "
                                "records none; pass token ids through the Python API instead")
        prefix = tokenizer.encode(args.prompt)
    seq_len = args.seq_len or model.config.seq_len
    began = time.perf_counter()
    result = sample(model, args.sampler, args.num_samples, seq_len, args.steps,
                    torch.Generator().manual_seed(args.seed), batch_size=args.batch_size,
                    prefix=prefix, progress=True, **options)
    seconds = time.perf_counter() - began
    batch_nfe = [s["nfe"] for s in result.stats for _ in range(s["size"])]
    lines = []
    for i, ids in enumerate(result.tokens.tolist()):
        lines.append(json.dumps({
            "text": tokenizer.decode(ids) if tokenizer is not None else "",
            "tokens": ids, "nfe": batch_nfe[i], "sampler": args.sampler,
            "steps": args.steps, "seed": args.seed, "index": i}))
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    rate = result.tokens.numel() / max(seconds, 1e-9)
    print(f"wrote {len(lines)} samples of {seq_len} tokens to {args.out} "
          f"({args.sampler}, T={args.steps}, NFE {result.nfe}, {rate:.0f} tokens/s)")
    return 0
