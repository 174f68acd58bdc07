"""`dslm sample`: draw sequences from a checkpoint with a named sampler, one JSON line each."""

from __future__ import annotations

import sys

HELP = "draw samples from a checkpoint with a named sampler (JSON lines out)"


def add_arguments(parser) -> None:
    from dslm.commands._checks import add_checkpoint_arguments

    add_checkpoint_arguments(parser, required=True)
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
    parser.add_argument("--infill", default=None, metavar="TEMPLATE",
                        help="text with [MASK] (one token) or [MASK]*k (k tokens) to fill in")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a sampler option, e.g. eta=0.02 or top_p=0.9 (repeatable)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    parser.add_argument("--out", required=True, help="output file (.jsonl)")
    parser.add_argument("--trace", default=None, metavar="FILE",
                        help="record every network call of the first sequences (JSON lines; "
                        "render with dslm trace render)")
    parser.add_argument("--trace-sequences", type=int, default=4,
                        help="sequences recorded by --trace (default 4, at most 64)")
    parser.add_argument("--live", action="store_true",
                        help="redraw the first sequence as it refines (only on a terminal)")


def run(args) -> int:
    import time

    import torch

    from dslm.commands._checks import bounded, require_tokenizer_packages, seed
    from dslm.config import parse_overrides
    from dslm.errors import SamplingError
    from dslm.evaluate.samples import PartialSamples, sample_records
    from dslm.io import check_disjoint, check_output_file
    from dslm.locks import folder_lock
    from dslm.models.checkpoint import open_checkpoint, resolve
    from dslm.processes import resolve_device
    from dslm.provenance import environment, identity
    from dslm.repro import reproducible
    from dslm.api import generate_batch
    from dslm.sampling import get_sampler, sampler_options
    from dslm.sampling.common import device_generator

    get_sampler(args.sampler)
    options = parse_overrides(args.option)
    resolved = sampler_options(args.sampler, options)   # unknown option -> error before loading
    if args.steps < 1:
        raise SamplingError(f"--steps must be a positive integer, got {args.steps}")
    bounded("--steps", args.steps)
    bounded("--num-samples", args.num_samples)
    bounded("--seq-len", args.seq_len, allow_none=True)
    bounded("--batch-size", args.batch_size, allow_none=True)
    seed("--seed", args.seed)
    ckpt = resolve(args.ckpt)
    check_disjoint(args.out, {"the checkpoint": ckpt, "the checkpoint argument": args.ckpt},
                   what="--out")
    check_output_file(args.out)
    observer, recorder, live = _observers(args, ckpt)
    require_tokenizer_packages(args.ckpt, "dslm sample")
    device = resolve_device(args.device, what="--device")
    with folder_lock(args.out, kind="file"), reproducible(True, 0, device.type):
        opened = open_checkpoint(args.ckpt, device, trust_pickle=args.trust_checkpoint)
        model = opened.model
        tokenizer = opened.tokenizer() if opened.tokenizer_spec is not None else None
        seq_len = args.seq_len or model.config.seq_len
        provenance = {"checkpoint": identity(args.ckpt), "options": to_plain(resolved),
                      "environment": environment()}
        if live is not None:
            live.tokenizer = tokenizer
        gen = device_generator(torch.Generator().manual_seed(args.seed), device)
        size = args.batch_size or args.num_samples
        writer = PartialSamples(args.out)
        began, nfe, done = time.perf_counter(), 0, 0
        try:
            for start in range(0, args.num_samples, size):     # one generator across batches
                n = min(size, args.num_samples - start)
                result = generate_batch(model, tokenizer, args.sampler, n,
                                        seq_len if args.infill is None else args.seq_len,
                                        args.steps, gen, prompt=args.prompt, infill=args.infill,
                                        batch_size=n, progress=live is None, trace=observer,
                                        where=f"checkpoint {args.ckpt}", **options)
                nfe, seq_len = max(nfe, result.nfe), len(result.ids[0])
                ids, texts = result.ids, result.texts
                records = sample_records(texts, ids, result.nfe, args.sampler, args.steps,
                                         args.seed, extra=provenance)
                for i, r in enumerate(records):
                    r["index"] = start + i
                writer.add(records)
                done += n
        except BaseException:
            if live is not None:
                live.close()
            writer.abandon()
            if writer.count:
                print(f"dslm: note: {writer.count} finished samples are kept in {writer.partial}",
                      file=sys.stderr)
            raise
        writer.finish()
        if live is not None:
            live.close()
        if recorder is not None:
            recorder.write(args.trace, tokenizer)
            print(f"wrote the trace of {min(done, args.trace_sequences)} sequence(s) to {args.trace}")
    seconds = time.perf_counter() - began
    rate = done * seq_len / max(seconds, 1e-9)
    print(f"wrote {done} samples of {seq_len} tokens to {args.out} "
          f"({args.sampler}, T={args.steps}, NFE {nfe}, {rate:.0f} tokens/s)")
    return 0


def _observers(args, ckpt):
    """(observer for sample(trace=), the recorder or None, the live view or None)."""
    from dslm.commands._checks import bounded
    from dslm.io import check_disjoint, check_output_file
    from dslm.trace.record import Tee, TraceError, TraceRecorder

    recorder = live = None
    if args.trace is not None:
        bounded("--trace-sequences", args.trace_sequences, high=64)
        check_disjoint(args.trace, {"the checkpoint": ckpt, "--out": args.out}, what="--trace")
        from pathlib import Path

        if Path(args.trace).resolve() == Path(args.out).resolve():
            raise TraceError("--trace and --out name the same file")
        check_output_file(args.trace)
        recorder = TraceRecorder(max_sequences=args.trace_sequences)
    if args.live:
        from dslm.trace.live import LiveView, live_enabled

        if live_enabled(sys.stdout):
            from dslm.extras import require

            require("rich", "dslm sample --live")
            live = LiveView()
        else:
            print("dslm: note: --live is off: stdout is not a terminal", file=sys.stderr)
    if recorder is None and live is None:
        return None, None, None
    return Tee(recorder, live), recorder, live


def to_plain(options) -> dict:
    """A JSON-ready dict of a sampler options dataclass."""
    import dataclasses
    import json

    return json.loads(json.dumps(dataclasses.asdict(options), default=str))
