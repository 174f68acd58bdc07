"""Self-correction in ReMDM-loop sampling (docs/ANALYSES.md §2).

An :class:`EventRecorder` is the sampler's ``observer`` (``dslm.sampling.sample(...,
observer=)``): it only reads the states the loop hands it, so samples do not change.
Per step it sees x (before), x' (after), the drawn and the remasked positions, and keeps

* a *remask*: a revealed, not given position set to [MASK] (its token a is remembered);
* a *re-decode*: a remasked position revealed again with token b (or, if still masked at
  the end, filled by the final step: b = its final token); it *changed* when b != a.

Judge preference of a change (a -> b at position i): in the context of the final sample
x^T, Delta_i = log p_J(x^T with x_i = b) - log p_J(x^T with x_i = a) (the judge's
log-likelihood of the decoded texts); the change moves *toward* the judge when Delta > 0,
*away* when Delta < 0, and is a *tie* when the two texts are the same or |Delta| < 1e-6.

"Wrong" committed tokens at the end: a generated (not given) position i of x^T is wrong
when its token's rank under the reference model's conditional is worse than ``k``
(rank 1 = the reference's top-1). The conditional is p_R(x_i | x_<i) for an AR reference
and p_R(x_i | x^T with only i masked) for an MDLM or DSL reference; the reference must
share the sampled model's tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from dslm.errors import DSLMError

#: The ReMDM-loop sampler of each model kind.
LOOP_SAMPLER = {"mdlm": "remdm-loop", "dsl": "dsl-remdm-loop"}
WRONG_RANK = 10
TIE = 1e-6


@dataclass
class Event:
    row: int
    pos: int
    remasked_at: int          # the step that remasked the position
    redecoded_at: int         # the step that revealed it again (-1: the final fill)
    old: int
    new: int

    @property
    def changed(self) -> bool:
        return self.old != self.new


class EventRecorder:
    """The loop's observer: counts remasks and re-decodes (module doc). It copies what it
    reads to numpy and never touches the loop's tensors."""

    def __init__(self, mask_id: int):
        self.mask_id = int(mask_id)
        self.pending: np.ndarray | None = None        # [B, L] old token, -1 = none
        self.since: np.ndarray | None = None          # [B, L] step of the remask
        self.ever_remasked: np.ndarray | None = None  # [B, L] remasked at least once
        self.remasks = 0
        self.events: list[Event] = []

    def __call__(self, k: int, x: torch.Tensor, new: torch.Tensor, drawn: torch.Tensor,
                 remask: torch.Tensor) -> None:
        x, new, remask = (t.detach().cpu().numpy() for t in (x, new, remask))
        if self.pending is None:
            self.pending = np.full(x.shape, -1, dtype=np.int64)
            self.since = np.full(x.shape, -1, dtype=np.int64)
            self.ever_remasked = np.zeros(x.shape, dtype=bool)
        back = (self.pending >= 0) & (x == self.mask_id) & (new != self.mask_id)
        self._close(back, new, k)
        self.pending[remask] = x[remask]
        self.since[remask] = k
        self.ever_remasked |= remask
        self.remasks += int(remask.sum())

    def _close(self, where: np.ndarray, tokens: np.ndarray, step: int) -> None:
        for r, i in zip(*np.nonzero(where)):
            self.events.append(Event(int(r), int(i), int(self.since[r, i]), step,
                                     int(self.pending[r, i]), int(tokens[r, i])))
        self.pending[where] = -1

    def finish(self, final) -> None:
        """Close the re-decodes the final fill made (positions still pending at the end)."""
        if self.pending is not None:
            self._close(self.pending >= 0, np.asarray(final), -1)


# ---------------------------------------------------------------- judge and reference


def judge_deltas(events: list[Event], final: torch.Tensor, decode, judge_ll,
                 max_judged: int | None = None, seed: int = 0) -> list[float]:
    """Delta per changed event (module doc); ``decode(ids) -> text`` and ``judge_ll(texts)
    -> log-likelihoods`` (nats). With ``max_judged``, a seeded uniform subset of that many
    changes is judged (a large judge costs two texts per change). Texts are deduplicated."""
    changed = [e for e in events if e.changed]
    if max_judged is not None and len(changed) > max_judged:
        keep = np.sort(np.random.default_rng(seed).choice(len(changed), max_judged, replace=False))
        changed = [changed[i] for i in keep]
    pairs = []
    for e in changed:
        before, after = final[e.row].tolist(), final[e.row].tolist()
        before[e.pos], after[e.pos] = e.old, e.new
        pairs.append((decode(before), decode(after)))
    unique = list(dict.fromkeys(t for p in pairs for t in p))
    ll = dict(zip(unique, (float(v) for v in judge_ll(unique)))) if unique else {}
    return [0.0 if a == b else ll[b] - ll[a] for a, b in pairs]


@torch.no_grad()
def reference_ranks(reference, final: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Rank (1 = top) of every token of ``final`` [N, L] under the reference's conditional
    (AR: given the tokens before; MDLM/DSL: given all others, that one masked)."""
    from dslm.sampling.common import model_device
    from dslm.scoring import masked_log_probs

    device = model_device(reference)
    x = final.to(device)
    if reference.kind == "ar":
        logp = torch.log_softmax(reference(x).float(), dim=-1)
        own = logp.gather(-1, x.unsqueeze(-1))
        return ((logp > own).sum(-1) + 1).cpu()
    n, length = x.shape
    ranks = torch.empty(n, length, dtype=torch.long)
    eye = torch.eye(length, dtype=torch.bool, device=device)
    for r in range(n):
        for s in range(0, length, batch_size):
            rows = eye[s:s + batch_size]
            xt = torch.where(rows, torch.full_like(rows, reference.vocab_size, dtype=torch.long),
                             x[r].expand(rows.shape[0], -1))
            logp = masked_log_probs(reference, xt, torch.full((rows.shape[0],), 1.0 / length,
                                                              device=device))
            pos = torch.arange(s, s + rows.shape[0], device=device)
            lp = logp[torch.arange(rows.shape[0], device=device), pos]       # [b, V]
            own = lp.gather(-1, x[r, pos].unsqueeze(-1))
            ranks[r, s:s + rows.shape[0]] = ((lp > own).sum(-1) + 1).cpu()
    return ranks


# ---------------------------------------------------------------- one budget


@dataclass
class Counts:
    """The counts of one (model, T) run; fractions are derived in :meth:`summary`."""

    samples: int = 0
    generated: int = 0            # generated (not given) tokens
    remasks: int = 0
    redecoded: int = 0
    changed: int = 0
    judged: int = 0               # changes the judge scored (all, or a subset)
    toward: int = 0
    away: int = 0
    ties: int = 0
    wrong: int = 0                # generated tokens with reference rank > k
    redecoded_positions: int = 0  # generated positions remasked at least once
    wrong_redecoded: int = 0      # ... of them wrong at the end
    nfe: int = 0
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        def frac(a, b):
            return a / b if b else None

        return {**{k: v for k, v in self.__dict__.items() if k != "extra"}, **self.extra,
                "changed_fraction": frac(self.changed, self.redecoded),
                "toward_fraction": frac(self.toward, self.judged),
                "wrong_fraction": frac(self.wrong, self.generated),
                "wrong_fraction_redecoded": frac(self.wrong_redecoded, self.redecoded_positions),
                "wrong_fraction_never_remasked": frac(self.wrong - self.wrong_redecoded,
                                                      self.generated - self.redecoded_positions)}


def count(recorder: EventRecorder, final: torch.Tensor, fixed: torch.Tensor, deltas: list[float],
          ranks: torch.Tensor | None, wrong_rank: int = WRONG_RANK) -> Counts:
    """Aggregate one run's events, judge deltas and reference ranks into :class:`Counts`."""
    free = ~fixed
    c = Counts(samples=int(final.shape[0]), generated=int(free.sum()), remasks=recorder.remasks)
    c.redecoded = len(recorder.events)
    c.changed = sum(e.changed for e in recorder.events)
    c.judged = len(deltas)
    c.toward = sum(d > TIE for d in deltas)
    c.away = sum(d < -TIE for d in deltas)
    c.ties = len(deltas) - c.toward - c.away
    ever = (torch.from_numpy(recorder.ever_remasked) if recorder.ever_remasked is not None
            else torch.zeros_like(free)) & free
    c.redecoded_positions = int(ever.sum())
    if ranks is not None:
        wrong = (ranks > wrong_rank) & free
        c.wrong = int(wrong.sum())
        c.wrong_redecoded = int((wrong & ever).sum())
    return c


def run_budget(model, tokenizer, steps: int, num_samples: int, seed: int, judge_ll=None,
               reference=None, wrong_rank: int = WRONG_RANK, seq_len: int | None = None,
               prompt: str | None = None, max_judged: int | None = None,
               **options) -> tuple[Counts, list[str]]:
    """Sample ``num_samples`` with the model's ReMDM loop at T = ``steps`` (seed ``seed``)
    under an :class:`EventRecorder`, then judge the changes and rank the final tokens."""
    from dslm.api import generate_batch
    from dslm.sampling.common import device_generator, model_device

    if model.kind not in LOOP_SAMPLER:
        raise DSLMError(f"self-correction needs an MDLM or DSL model, got a '{model.kind}' model")
    sampler = LOOP_SAMPLER[model.kind]
    recorder = EventRecorder(model.vocab_size)
    gen = device_generator(torch.Generator().manual_seed(int(seed)), model_device(model))
    out = generate_batch(model, tokenizer, sampler, num_samples, seq_len, steps, gen,
                         prompt=prompt, observer=recorder, **options)
    final = torch.tensor(out.ids, dtype=torch.long)
    recorder.finish(final)
    fixed = torch.zeros_like(final, dtype=torch.bool)
    if prompt is not None and tokenizer is not None:
        fixed[:, :len(tokenizer.encode(prompt))] = True
    deltas = (judge_deltas(recorder.events, final, tokenizer.decode, judge_ll, max_judged, seed)
              if judge_ll is not None and tokenizer is not None else [])
    ranks = reference_ranks(reference, final) if reference is not None else None
    c = count(recorder, final, fixed, deltas, ranks, wrong_rank)
    c.nfe = out.nfe
    c.extra = {"sampler": sampler, "steps": steps, "seed": seed,
               "judge": judge_ll is not None, "reference": reference is not None,
               "mean_delta": float(np.mean(deltas)) if deltas else None}
    return c, out.texts


def self_correction(models: dict, tokenizer, steps_list, num_samples: int = 8, seed: int = 0,
                    judge_ll=None, reference=None, wrong_rank: int = WRONG_RANK,
                    seq_len: int | None = None, max_judged: int | None = None,
                    **options) -> list[dict]:
    """One summary row per (model label, T): every model sampled with the same seed."""
    rows = []
    for label, model in models.items():
        for steps in steps_list:
            c, _ = run_budget(model, tokenizer, steps, num_samples, seed, judge_ll, reference,
                              wrong_rank, seq_len, max_judged=max_judged, **options)
            rows.append({"model": label, **c.summary(), "wrong_rank": wrong_rank})
    return rows


def markdown(rows: list[dict]) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    lines = ["Per model and step budget T: remasks, re-decodes, how many re-decodes changed the "
             "token, how many of the judged changes the judge prefers (its log-likelihood "
             "rises) or not, and the "
             "share of generated tokens outside the reference's top-k at the end "
             "(docs/ANALYSES.md).", "",
             "| model | sampler | T | samples | remasks | re-decoded | changed | toward judge "
             "/ judged | away | wrong at end | wrong, re-decoded | wrong, never remasked |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['sampler']} | {r['steps']} | {r['samples']} | {r['remasks']} "
            f"| {r['redecoded']} | {r['changed']} ({pct(r['changed_fraction'])}) "
            f"| {r['toward']} / {r['judged']} ({pct(r['toward_fraction'])}) | {r['away']} "
            f"| {pct(r['wrong_fraction']) if r['reference'] else '-'} "
            f"| {pct(r['wrong_fraction_redecoded']) if r['reference'] else '-'} "
            f"| {pct(r['wrong_fraction_never_remasked']) if r['reference'] else '-'} |")
    k = rows[0]["wrong_rank"] if rows else WRONG_RANK
    lines += ["", f"wrong = reference rank > {k}."]
    return "\n".join(lines) + "\n"


def write(rows: list[dict], out_dir) -> dict:
    import json
    from pathlib import Path

    from dslm.io import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "self_correction.json", "md": out / "self_correction.md"}
    atomic_write_text(paths["json"], json.dumps({"rows": rows}, indent=1) + "\n")
    atomic_write_text(paths["md"], markdown(rows))
    return {k: str(v) for k, v in paths.items()}
