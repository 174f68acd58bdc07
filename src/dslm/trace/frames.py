"""A trace as a list of frames: what each traced position shows after each recorded call.

A cell of a frame is one position of one traced sequence:

* ``committed`` the state holds token x_i (MDLM revealed, DSL at its clean point, AR
  already generated, a given token): drawn solid;
* ``evidence``  DSL only, not committed but SNR s_i > 0 (the continuous SDE, a soft
  remask): the posterior's top-1 token, shaded by its probability;
* ``masked``    no evidence (MDLM [MASK], DSL at SNR 0, AR not generated yet): a blank.

Frame k holds the k-th recorded call of every traced batch (batches that finished
earlier show their final tokens); the last frame is the final tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Longest text shown for one token (longer pieces are cut with an ellipsis).
MAX_PIECE = 12


@dataclass
class Cell:
    kind: str          # committed | evidence | masked
    text: str          # the token's text (committed / evidence) or "" (masked)
    prob: float        # posterior top-1 probability (1.0 for a final token)
    snr: float | None = None
    changed: bool = False   # committed now and not in the previous frame (or a new token)


@dataclass
class Frame:
    step: int
    nfe: int
    rows: list[list[Cell]] = field(default_factory=list)
    final: bool = False

    @property
    def label(self) -> str:
        return "final tokens" if self.final else f"step {self.step}, NFE {self.nfe}"


def piece(header: dict, token: int) -> str:
    """Display text of ``token``: its decoded piece (newlines as a return sign), or #id."""
    pieces = header.get("pieces") or {}
    text = pieces.get(str(token))
    if text is None:
        text = f"#{token}"
    text = text.replace("\n", "\u23ce").replace("\t", " ")
    # other control characters (a BPE may hold e.g. U+001D) as \xNN: drawable and visible
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text if len(text) <= MAX_PIECE else text[: MAX_PIECE - 1] + "\u2026"


def _cells(header: dict, record: dict, row: int) -> list[Cell]:
    tokens = record["tokens"][row]
    if record["type"] == "final":
        return [Cell("committed", piece(header, t), 1.0) for t in tokens]
    top1, prob = record["top1"][row], record["prob"][row]
    snr = record["snr"][row] if "snr" in record else None
    out = []
    for i, t in enumerate(tokens):
        s = snr[i] if snr is not None else None
        if t >= 0:
            out.append(Cell("committed", piece(header, t), prob[i], s))
        elif s is not None and s > 0 and top1[i] >= 0:
            out.append(Cell("evidence", piece(header, top1[i]), prob[i], s))
        else:
            out.append(Cell("masked", "", prob[i], s))
    return out


def build_frames(header: dict, records: list[dict], max_frames: int | None = None) -> list[Frame]:
    """The frames of a trace (see module doc); ``max_frames`` keeps an evenly spaced
    subset (the first and the final frame always)."""
    batches: dict[int, list[dict]] = {}
    finals: dict[int, dict] = {}
    for r in records:
        if r["type"] == "call":
            batches.setdefault(r["batch"], []).append(r)
        elif r["type"] == "final":
            finals[r["batch"]] = r
    order = sorted(set(batches) | set(finals))
    n_calls = max((len(v) for v in batches.values()), default=0)
    frames: list[Frame] = []
    for k in range(n_calls):
        frame = None
        for b in order:
            calls = batches.get(b, [])
            rec = calls[k] if k < len(calls) else finals.get(b) or (calls[-1] if calls else None)
            if rec is None:
                continue
            if frame is None:
                frame = Frame(rec.get("step", 0), rec.get("nfe", 0))
            frame.rows.extend(_cells(header, rec, i) for i in range(len(rec["tokens"])))
        if frame is not None:
            frames.append(frame)
    if finals:
        last = Frame(max(f.get("step", 0) for f in finals.values()),
                     max((c["nfe"] for v in batches.values() for c in v), default=0), final=True)
        for b in order:
            if b in finals:
                f = finals[b]
                last.rows.extend(_cells(header, f, i) for i in range(len(f["tokens"])))
        frames.append(last)
    _mark_changes(frames)
    if max_frames is not None and len(frames) > max_frames >= 2:
        idx = sorted({round(j * (len(frames) - 1) / (max_frames - 1)) for j in range(max_frames)})
        frames = [frames[j] for j in idx]
    return frames


def _mark_changes(frames: list[Frame]) -> None:
    for before, now in zip(frames, frames[1:]):
        if len(before.rows) != len(now.rows):
            continue
        for row_b, row_n in zip(before.rows, now.rows):
            for cb, cn in zip(row_b, row_n):
                cn.changed = cn.kind == "committed" and (cb.kind != "committed" or cb.text != cn.text)


def position_widths(frames: list[Frame]) -> list[list[int]]:
    """Characters per position and row: the longest text the position ever shows (>= 1),
    so the layout stays put from frame to frame."""
    if not frames:
        return []
    widths = [[1] * len(row) for row in frames[-1].rows]
    for f in frames:
        for r, row in enumerate(f.rows[: len(widths)]):
            for i, cell in enumerate(row[: len(widths[r])]):
                widths[r][i] = max(widths[r][i], len(cell.text))
    return widths
