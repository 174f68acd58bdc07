"""Recording what a sampler's network sees and says at every call (``dslm sample --trace``).

A trace observer is passed to ``dslm.sampling.sample(..., trace=obs)``. ``sample`` calls
``obs.start(info)`` once per call of ``sample`` (sampler, model kind, V, L, T, N),
``obs.batch(size)`` per batch (it returns the per-call callback, or None to skip the
batch), ``obs.tick()`` after every sampler step and ``obs.batch_done(tokens)`` with the
batch's final tokens. The per-call callback runs inside the counted network
(``dslm.sampling.common.Network``) after each real call: it only reads tensors (no
random numbers drawn, no state changed), so a traced run draws the same tokens.

Per recorded call and traced position i, a :class:`CallView` holds

* ``tokens``: the committed token of the state the network read, or -1 ([MASK] /
  not committed: masked positions of MDLM, DSL positions not at their clean point);
* ``top1``, ``prob``: argmax_v p(x_i = v | state) and its probability (softmax of the
  network's output over the V real tokens);
* ``snr`` (DSL only): the position's SNR s_i (snr_max committed, 0 masked, the path's
  s on the continuous SDE, ``renoise_snr`` after a soft remask).

Bounded size: at most ``max_sequences`` sequences (the first ones; the rest are not
traced) and ``max_positions`` positions (a longer sequence is refused with a
:class:`TraceError`); when sequences x positions x recorded calls would pass
``max_cells``, every other recorded call is dropped and only every ``stride``-th call
is recorded from then on (the stride doubles each time). The final tokens of every
traced batch are always kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dslm.errors import DSLMError

FORMAT = "dslm-trace"
VERSION = 1


class TraceError(DSLMError):
    """A trace that cannot be recorded or read (too large, unreadable, wrong format)."""


@dataclass
class CallView:
    """One network call seen on the traced rows: [R, L] tensors on the CPU."""

    tokens: torch.Tensor
    top1: torch.Tensor
    prob: torch.Tensor
    snr: torch.Tensor | None


def call_view(info: dict, net, args, out: torch.Tensor, rows: slice) -> CallView:
    """The :class:`CallView` of one call: the state from the sampler's ``net.note`` (DSL)
    or the id input (MDLM, AR), the posterior's top-1 from the output ``out``."""
    vocab, length = info["vocab_size"], info["seq_len"]
    noted = getattr(net, "noted", {}) or {}
    if "tokens" in noted:
        ids = noted["tokens"][rows]
    elif args and torch.is_tensor(args[0]) and not args[0].is_floating_point():
        ids = args[0][rows]
    else:
        ids = None
    if ids is None:
        tokens = torch.full((rows.stop - rows.start, length), -1, dtype=torch.long)
    else:
        ids = ids.detach().to("cpu", torch.long)
        tokens = torch.full((ids.shape[0], length), -1, dtype=torch.long)
        width = min(ids.shape[1], length)
        if info["model_kind"] == "ar":             # AR reads x_<=i; x_i is the slot it predicts
            width = min(ids.shape[1] - 1, length)
        tokens[:, :width] = torch.where((ids[:, :width] >= 0) & (ids[:, :width] < vocab),
                                        ids[:, :width], -1)
    scores = out[rows, ..., :vocab].detach().float()
    probs = torch.softmax(scores, dim=-1)
    prob, top1 = probs.max(dim=-1)
    prob_full = torch.zeros(tokens.shape, dtype=torch.float32)
    top_full = torch.full(tokens.shape, -1, dtype=torch.long)
    width = min(prob.shape[1], length)
    prob_full[:, :width] = prob[:, :width].cpu()
    top_full[:, :width] = top1[:, :width].cpu()
    snr = None
    if "snr" in noted:
        value = noted["snr"]
        value = value() if callable(value) else value
        snr = torch.as_tensor(value)[rows].detach().to("cpu", torch.float32)
    return CallView(tokens, top_full, prob_full, snr)


class TraceObserver:
    """The protocol ``sample(trace=...)`` drives; every method is a no-op here."""

    def start(self, info: dict) -> None:
        pass

    def batch(self, size: int):
        return None

    def tick(self) -> None:
        pass

    def batch_done(self, tokens: torch.Tensor) -> None:
        pass


class Tee(TraceObserver):
    """Several observers (e.g. a recorder and the live view) on one run."""

    def __init__(self, *observers):
        self.observers = [o for o in observers if o is not None]

    def start(self, info):
        for o in self.observers:
            o.start(info)

    def batch(self, size):
        calls = [c for c in (o.batch(size) for o in self.observers) if c is not None]
        if not calls:
            return None

        def observe(net, args, kwargs, out):
            for c in calls:
                c(net, args, kwargs, out)
        return observe

    def tick(self):
        for o in self.observers:
            o.tick()

    def batch_done(self, tokens):
        for o in self.observers:
            o.batch_done(tokens)


def _rounded(t: torch.Tensor, digits: int) -> list:
    return [[round(float(v), digits) for v in row] for row in t.tolist()]


class TraceRecorder(TraceObserver):
    """Records the first ``max_sequences`` sequences of a sampling run (see module doc).

    ``write(path, tokenizer=None)`` writes the JSON-lines trace: a header (sampler, model
    kind, V, L, T, stride, the token pieces when a tokenizer is given), one ``call`` line
    per recorded call and one ``final`` line per traced batch.
    """

    def __init__(self, max_sequences: int = 4, max_positions: int = 1024,
                 max_cells: int = 250_000):
        for name, value in (("max_sequences", max_sequences), ("max_positions", max_positions),
                            ("max_cells", max_cells)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TraceError(f"trace {name} must be a positive integer, got {value!r}")
        if max_sequences > 64:
            raise TraceError(f"a trace holds at most 64 sequences, got max_sequences={max_sequences}")
        self.max_sequences, self.max_positions, self.max_cells = max_sequences, max_positions, max_cells
        self.info: dict[str, Any] | None = None
        self.records: list[dict] = []
        self.offset = 0              # rows seen so far, over every batch and sample() call
        self.batches = 0
        self.stride = 1
        self.calls = 0               # calls observed on traced rows (recorded or not)
        self.steps_done = 0
        self._active: tuple[int, slice] | None = None

    # ------------------------------------------------------------ the sample() protocol

    def start(self, info: dict) -> None:
        if info["seq_len"] > self.max_positions:
            raise TraceError(f"a trace holds at most {self.max_positions} positions per sequence, "
                             f"got seq_len {info['seq_len']}; trace a shorter --seq-len")
        if self.info is not None:
            same = ("sampler", "model_kind", "vocab_size", "seq_len", "steps")
            if any(self.info[k] != info[k] for k in same):
                raise TraceError("one trace records one sampler on one model; this recorder "
                                 f"already holds '{self.info['sampler']}'")
            self.info["num_samples"] += info["num_samples"]
            return
        self.info = dict(info)

    def batch(self, size: int):
        first, self.offset = self.offset, self.offset + size
        stop = min(first + size, self.max_sequences)
        self._active = None
        if first >= stop:
            return None
        rows = slice(0, stop - first)
        self._active = (self.batches, rows, first)
        self.batches += 1
        self.steps_done = 0
        return self._observe

    def tick(self) -> None:
        self.steps_done += 1

    def batch_done(self, tokens: torch.Tensor) -> None:
        if self._active is None:
            return
        b, rows, first = self._active
        final = tokens[rows].to("cpu", torch.long)
        self.records.append({"type": "final", "batch": b, "step": self.steps_done,
                             "rows": list(range(first, first + final.shape[0])),
                             "tokens": final.tolist()})
        self._active = None

    # ------------------------------------------------------------ recording

    def _observe(self, net, args, kwargs, out) -> None:
        b, rows, first = self._active
        self.calls += 1
        if (net.nfe - 1) % self.stride:
            return
        view = call_view(self.info, net, args, out, rows)
        record = {"type": "call", "batch": b, "nfe": int(net.nfe), "step": self.steps_done,
                  "rows": list(range(first, first + view.tokens.shape[0])),
                  "tokens": view.tokens.tolist(), "top1": view.top1.tolist(),
                  "prob": _rounded(view.prob, 3)}
        if view.snr is not None:
            record["snr"] = _rounded(view.snr, 3)
        self.records.append(record)
        self._thin()

    def _cells(self) -> int:
        return sum(len(r["tokens"]) * len(r["tokens"][0]) for r in self.records
                   if r["type"] == "call")

    def _thin(self) -> None:
        """Halve the recorded calls (keep those at nfe - 1 = 0 mod 2 stride) while too many."""
        while self._cells() > self.max_cells:
            self.stride *= 2
            kept = [r for r in self.records
                    if r["type"] != "call" or (r["nfe"] - 1) % self.stride == 0]
            if len(kept) == len(self.records):
                raise TraceError(f"one call of {self._cells()} cells passes the trace limit "
                                 f"max_cells={self.max_cells}")
            self.records = kept

    # ------------------------------------------------------------ output

    def header(self, tokenizer=None) -> dict:
        if self.info is None:
            raise TraceError("nothing was traced (the recorder was never passed to sample)")
        head = {"type": "header", "format": FORMAT, "version": VERSION, **self.info,
                "stride": self.stride, "observed_calls": self.calls,
                "limits": {"max_sequences": self.max_sequences,
                           "max_positions": self.max_positions, "max_cells": self.max_cells}}
        if tokenizer is not None:
            head["pieces"] = token_pieces(self.records, tokenizer)
        return head

    def lines(self, tokenizer=None) -> list[dict]:
        return [self.header(tokenizer), *self.records]

    def write(self, path, tokenizer=None) -> Path:
        from dslm.io import atomic_write_text

        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in self.lines(tokenizer))
        atomic_write_text(path, text)
        return Path(path)


def token_pieces(records: list[dict], tokenizer) -> dict[str, str]:
    """``{id: text}`` of every token id that appears in ``records`` (one decode per id)."""
    ids = set()
    for r in records:
        for key in ("tokens", "top1"):
            for row in r.get(key, ()):
                ids.update(row)
    ids.discard(-1)
    pieces = {}
    for i in sorted(ids):
        try:
            pieces[str(i)] = tokenizer.decode([i])
        except Exception:          # a tokenizer that cannot decode one id alone
            pieces[str(i)] = f"<{i}>"
    return pieces


def read_trace(path) -> tuple[dict, list[dict]]:
    """(header, records) of a trace file; a missing or malformed file -> TraceError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TraceError(f"cannot read trace {path}: {e.strerror or e}") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    try:
        parsed = [json.loads(ln) for ln in lines]
    except json.JSONDecodeError as e:
        raise TraceError(f"trace {path} is not JSON lines (line {e.lineno}): {e.msg}") from None
    if not parsed or not isinstance(parsed[0], dict) or parsed[0].get("format") != FORMAT:
        raise TraceError(f"{path} is not a dslm trace (no '{FORMAT}' header line)")
    if parsed[0].get("version") != VERSION:
        raise TraceError(f"trace {path} has format version {parsed[0].get('version')}, "
                         f"this dslm reads version {VERSION}")
    return parsed[0], parsed[1:]
