"""``dslm sample --live``: the first sequence of each batch redrawn in the terminal at
every network call, with ``rich``. Same observer protocol as the recorder (it only
reads), same cell kinds as the pictures: committed tokens bold (green on the call
that commits them), DSL tokens with evidence in blue on a background as strong as
their probability, masked positions as grey underscores."""

from __future__ import annotations

import sys
import time

from dslm.trace.frames import Cell, _cells
from dslm.trace.record import TraceObserver, call_view


def live_enabled(stream=None) -> bool:
    """The live view runs only when ``stream`` (stdout) is an interactive terminal."""
    stream = stream if stream is not None else sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _style(cell: Cell) -> str:
    if cell.kind == "masked":
        return "grey50"
    if cell.kind == "committed":
        return "bold black on green" if cell.changed else "bold"
    a = 0.06 + 0.5 * min(max(cell.prob, 0.0), 1.0)       # background strength = probability
    r, g, b = (round(255 - a * (255 - c)) for c in (25, 90, 200))
    return f"rgb(25,90,200) on rgb({r},{g},{b})"


def live_text(cells: list[Cell], label: str = ""):
    """A ``rich.text.Text`` of one sequence's cells (a renderable; tests read its spans)."""
    from rich.text import Text

    text = Text()
    if label:
        text.append(label + "\n", style="dim")
    for i, cell in enumerate(cells):
        if i:
            text.append(" ")
        text.append(cell.text if cell.kind != "masked" else "_", style=_style(cell))
    return text


class LiveView(TraceObserver):
    """Redraws row 0 of each batch at most ``fps`` times a second (and always the final
    tokens). ``tokenizer`` decodes ids (else #id); ``console`` is a rich Console."""

    def __init__(self, tokenizer=None, console=None, fps: float = 10.0):
        self.tokenizer, self.console, self.fps = tokenizer, console, fps
        self.info: dict | None = None
        self.pieces: dict[str, str] = {}
        self.live = None
        self.previous: list[Cell] | None = None
        self.shown_at = 0.0
        self.batches = 0
        self.steps_done = 0

    def start(self, info: dict) -> None:
        self.info = dict(info)

    def batch(self, size: int):
        self.batches += 1
        self.steps_done = 0
        self.previous = None
        if self.live is None:
            from rich.live import Live

            self.live = Live(console=self.console, auto_refresh=False, transient=False)
            self.live.start()
        return self._observe

    def tick(self) -> None:
        self.steps_done += 1

    def _piece_header(self, ids) -> dict:
        for i in ids:
            key = str(i)
            if i >= 0 and key not in self.pieces:
                try:
                    self.pieces[key] = self.tokenizer.decode([i]) if self.tokenizer else f"#{i}"
                except Exception:      # a tokenizer that cannot decode one id alone
                    self.pieces[key] = f"#{i}"
        return {"pieces": self.pieces}

    def cells(self, record: dict) -> list[Cell]:
        """Cells of row 0 of a call/final record, marking tokens committed since last shown."""
        header = self._piece_header(set(record["tokens"][0]) | set(record.get("top1", [[]])[0]))
        cells = _cells(header, record, 0)
        if self.previous is not None and len(self.previous) == len(cells):
            for before, now in zip(self.previous, cells):
                now.changed = now.kind == "committed" and (before.kind != "committed"
                                                           or before.text != now.text)
        self.previous = cells
        return cells

    def _observe(self, net, args, kwargs, out) -> None:
        now = time.monotonic()
        if now - self.shown_at < 1.0 / self.fps:
            return
        view = call_view(self.info, net, args, out, slice(0, 1))
        record = {"type": "call", "tokens": view.tokens.tolist(), "top1": view.top1.tolist(),
                  "prob": view.prob.tolist()}
        if view.snr is not None:
            record["snr"] = view.snr.tolist()
        label = (f"{self.info['sampler']}  batch {self.batches}  step {self.steps_done}/"
                 f"{self.info['steps']}  NFE {net.nfe}")
        self._show(live_text(self.cells(record), label))
        self.shown_at = now

    def batch_done(self, tokens) -> None:
        record = {"type": "final", "tokens": tokens[:1].tolist()}
        label = f"{self.info['sampler']}  batch {self.batches}  final tokens"
        self._show(live_text(self.cells(record), label))

    def _show(self, renderable) -> None:
        if self.live is not None:
            self.live.update(renderable, refresh=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
