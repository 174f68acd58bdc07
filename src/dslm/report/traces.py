"""The demo's traces: one short trace per sampler family on the demo's own models.

One sequence each at a small step budget (T = the smallest of the demo's budgets, at
least 4; the AR trace holds ``AR_TRACE_LEN`` tokens), so the whole stage costs seconds: ``traces/<sampler>.jsonl`` plus, per
trace, ``<sampler>.heatmap.png`` and ``<sampler>.frames.png`` (a filmstrip) that the
report inlines. The MDLM samplers run on the MDLM control, the DSL ones on the DSL
fine-tune, ``ar`` on the AR baseline; all use the demo's seed.
"""

from __future__ import annotations

from pathlib import Path

#: sampler -> which demo model it runs on (one per sampler family, plus DSL's variants)
FAMILIES = {"mdlm": "mdlm-control", "remdm-loop": "mdlm-control", "dsl-mdlm": "dsl",
            "dsl-remdm-loop": "dsl", "roar-ar": "dsl", "dsl-continuous": "dsl",
            "hybrid": "dsl", "ar": "ar"}


#: tokens of the AR trace: its sampler makes one call per token, each over the prefix
#: (cost ~ L^2), so it traces a shorter sequence than the others (the models' L).
AR_TRACE_LEN = 48


def trace_steps(cfg) -> int:
    return max(4, min(cfg.steps) if cfg.steps else 8)


def record_demo_traces(cfg, out: Path, sequences: int = 1) -> list[dict]:
    """Record and draw one trace per family; returns [{sampler, model, jsonl, heatmap,
    frames, steps}] for the report (a family whose model folder is missing is skipped)."""
    import torch

    from dslm.io import atomic_write_bytes
    from dslm.models.checkpoint import open_checkpoint
    from dslm.sampling import sample
    from dslm.trace.frames import build_frames
    from dslm.trace.record import TraceRecorder
    from dslm.trace.render import filmstrip_png, quick_heatmap_png

    folder = Path(out) / "traces"
    folder.mkdir(parents=True, exist_ok=True)
    steps = trace_steps(cfg)
    cache: dict[str, tuple] = {}
    done = []
    for sampler, stage in FAMILIES.items():
        ckpt = Path(out) / stage
        if not ckpt.exists():
            continue
        if stage not in cache:
            opened = open_checkpoint(str(ckpt), map_location="cpu")
            cache[stage] = (opened.model, opened.tokenizer())
        model, tokenizer = cache[stage]
        rec = TraceRecorder(max_sequences=sequences)
        gen = torch.Generator().manual_seed(cfg.seed)
        length = model.config.seq_len if sampler != "ar" else min(AR_TRACE_LEN, model.config.seq_len)
        sample(model, sampler, sequences, length, steps, gen, trace=rec)
        path = rec.write(folder / f"{sampler}.jsonl", tokenizer)
        header, records = rec.header(tokenizer), rec.records
        frames = build_frames(header, records)
        heat, strip = folder / f"{sampler}.heatmap.png", folder / f"{sampler}.frames.png"
        atomic_write_bytes(heat, quick_heatmap_png(header, records))
        atomic_write_bytes(strip, filmstrip_png(frames, count=4, title=f"{sampler} T={steps}"))
        done.append({"sampler": sampler, "model": stage, "steps": steps, "seq_len": length,
                     "nfe": max((r.get("nfe", 0) for r in records), default=0), "jsonl": str(path),
                     "heatmap": str(heat), "frames": str(strip)})
    return done
