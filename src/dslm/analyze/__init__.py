"""The paper's analyses: calibration of the denoiser and self-correction in ReMDM loops.

* ``calibration``     ECE and reliability diagrams over corruption levels
* ``selfcorrection``  remask / re-decode events, the judge's view of changes, wrong tokens
* ``demo_analyses``   both, small, for the demo's DSL model and its MDLM control

Definitions: docs/ANALYSES.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dslm.errors import DSLMError
from dslm.provenance import cpu_seconds


def held_out_blocks(spec: str, tokenizer, seq_len: int, n: int, seed: int = 0,
                    checkpoint=None) -> np.ndarray:
    """``n`` held-out blocks [n, seq_len] of token ids: ``validation`` (the validation split
    of the data ``checkpoint`` was trained on) or a ``.txt`` / ``.jsonl`` file (each text
    encoded, EOS between texts, cut into blocks; ``n`` of them drawn, seeded)."""
    rng = np.random.default_rng(seed)
    if spec == "validation":
        from dslm.data import prepare_data
        from dslm.models.checkpoint import open_checkpoint

        if checkpoint is None:
            raise DSLMError("--data validation needs a dslm checkpoint that records its data")
        data = open_checkpoint(checkpoint, weights=False).data_config
        data = data() if callable(data) else data
        if data is None:
            raise DSLMError(f"checkpoint {checkpoint} records no data config; pass a .txt/.jsonl")
        val = prepare_data(data, tokenizer=tokenizer).val
        if val.shape[1] < seq_len:
            raise DSLMError(f"validation blocks hold {val.shape[1]} tokens, fewer than {seq_len}")
        pick = rng.choice(len(val), size=min(n, len(val)), replace=False)
        return np.asarray(val[np.sort(pick)][:, :seq_len], dtype=np.int64)
    from dslm.evaluate.samples import read_reference_file

    ids: list[int] = []
    for text in read_reference_file(spec):
        ids += tokenizer.encode(text) + [tokenizer.eos_id]
    count = len(ids) // seq_len
    if count == 0:
        raise DSLMError(f"{spec} holds {len(ids)} tokens, less than one block of {seq_len}")
    blocks = np.asarray(ids[:count * seq_len], dtype=np.int64).reshape(count, seq_len)
    pick = rng.choice(count, size=min(n, count), replace=False)
    return blocks[np.sort(pick)]


def judge_log_likelihood(judge):
    """``texts -> log p_J(text)`` (nats) of a ``dslm.evaluate.lm.CausalLM`` judge."""

    def ll(texts):
        nll, _ = judge.nll_per_text(judge.encode(list(texts)))
        return (-nll).tolist()

    return ll


def demo_analyses(dsl_ckpt, control_ckpt, blocks, judge, out_dir, *, reference=None,
                  steps=(8, 16), num_samples: int = 4, num_blocks: int = 16,
                  max_judged: int | None = 10, seed: int = 0, device: str = "cpu") -> dict:
    """Both analyses, small, for the demo's DSL model and its MDLM control.

    ``blocks``: held-out token blocks [N, L] (the models' tokenizer) or a data spec
    (``validation`` / a file); ``judge``: a ``CausalLM`` (or a spec: ``smollm2-135m``, a dslm
    AR checkpoint, a HF causal LM; or None to skip judging); ``reference``: a checkpoint for the wrong-token count (default:
    the judge when it is a dslm checkpoint, else none); ``max_judged``: changes judged per
    (model, T), a seeded subset (SmolLM2 costs about 0.3 CPU-s per text). Writes calibration.{json,md,png}
    and self_correction.{json,md} to ``out_dir``; returns their paths, the summaries and
    the CPU seconds used."""
    from dslm.analyze import calibration as cal
    from dslm.analyze import selfcorrection as sc
    from dslm.models.checkpoint import is_dslm_checkpoint, open_checkpoint

    began_cpu, began = cpu_seconds(), time.perf_counter()
    dsl = open_checkpoint(dsl_ckpt, device)
    models = {"DSL": dsl.model, "MDLM control": open_checkpoint(control_ckpt, device).model}
    tokenizer = dsl.tokenizer() if dsl.tokenizer_spec is not None else None
    seq_len = min(int(m.config.seq_len) for m in models.values())
    if isinstance(blocks, (str, Path)):
        blocks = held_out_blocks(str(blocks), tokenizer, seq_len, num_blocks, seed, dsl_ckpt)
    blocks = np.asarray(blocks)[:num_blocks]
    result = cal.calibration(models, blocks, seed=seed)
    paths = cal.write(result, out_dir)
    judge_ll = None
    if isinstance(judge, (str, Path)):
        from dslm.evaluate.judges import load_named

        if reference is None and is_dslm_checkpoint(judge):
            reference = judge
        judge = load_named(str(judge), device)
    if judge is not None:
        judge_ll = judge_log_likelihood(judge)
    ref_model = open_checkpoint(reference, device).model if reference is not None else None
    rows = sc.self_correction(models, tokenizer, list(steps), num_samples, seed, judge_ll,
                              ref_model, max_judged=max_judged)
    paths.update({f"self_correction_{k}": v for k, v in sc.write(rows, out_dir).items()})
    return {"paths": paths, "calibration": result.to_dict(), "self_correction": rows,
            "cpu_seconds": cpu_seconds() - began_cpu,
            "wall_seconds": time.perf_counter() - began}


__all__ = ["demo_analyses", "held_out_blocks", "judge_log_likelihood"]
