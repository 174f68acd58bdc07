"""Calibration of the denoiser's token predictions (docs/ANALYSES.md §1).

On held-out blocks x0 [N, L], at each corruption level, every scored position gives one
prediction: confidence c = max_v p(x_i = v | state) and correctness a = [argmax = x0_i].
With B bins (equal width on [0, 1] by default, or equal mass),

    ECE = sum_b (n_b / n) | acc_b - conf_b |,

acc_b / conf_b the mean correctness / confidence of the n_b predictions in bin b.

Corruption levels:
* ``mask:r`` (MDLM and DSL): each token masked independently with probability r; masked
  positions are scored. MDLM reads [MASK]; DSL reads y = 0 there and the clean point
  ``snr_max e_x`` at revealed positions.
* ``snr:m`` (DSL only): every position localized at its own SNR, log s_i ~ N(log m,
  ``SNR_LOG_SIGMA``^2), y_i = s_i e_{x_i} + sqrt(s_i) eps_i; every position is scored.

Each level draws from its own generator seeded with (seed, level index), so every model
sees the same blocks and the same masks / SNRs / noise (equal embedding widths d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from dslm.errors import DSLMError

MASK_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
#: Medians of the log-normal SNR levels (15 ~ e^2.69, the training schedule's median).
SNR_MEDIANS = (1.0, 4.0, 15.0, 60.0)
SNR_LOG_SIGMA = 1.41
DEFAULT_BINS = 15
BINNINGS = ("width", "mass")


# ---------------------------------------------------------------- ECE


def reliability_bins(confidence, correct, bins: int = DEFAULT_BINS,
                     binning: str = "width") -> list[dict]:
    """Per bin: its confidence range [lo, hi], count n, mean accuracy and confidence.

    ``width``: B equal-width bins on [0, 1] (c = 1 falls in the last); ``mass``: B bins of
    (nearly) equal counts over the sorted confidences. Empty bins are kept with n = 0."""
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    acc = np.asarray(correct, dtype=np.float64).ravel()
    if conf.shape != acc.shape:
        raise DSLMError("confidence and correctness must have the same length")
    if binning not in BINNINGS:
        raise DSLMError(f"unknown binning '{binning}'; choose {' or '.join(BINNINGS)}")
    if not isinstance(bins, int) or bins < 1:
        raise DSLMError(f"bins must be a positive integer, got {bins!r}")
    if binning == "width":
        index = np.minimum((conf * bins).astype(np.int64), bins - 1)
        edges = [(b / bins, (b + 1) / bins) for b in range(bins)]
        groups = [np.flatnonzero(index == b) for b in range(bins)]
    else:
        order = np.argsort(conf, kind="stable")
        groups = np.array_split(order, bins)
        edges = [(float(conf[g].min()), float(conf[g].max())) if len(g) else (math.nan, math.nan)
                 for g in groups]
    out = []
    for (lo, hi), g in zip(edges, groups):
        n = int(len(g))
        out.append({"lo": lo, "hi": hi, "n": n,
                    "accuracy": float(acc[g].mean()) if n else None,
                    "confidence": float(conf[g].mean()) if n else None})
    return out


def expected_calibration_error(confidence, correct, bins: int = DEFAULT_BINS,
                               binning: str = "width") -> float:
    """ECE = sum_b (n_b / n) |acc_b - conf_b| (see :func:`reliability_bins`)."""
    table = reliability_bins(confidence, correct, bins, binning)
    total = sum(b["n"] for b in table)
    if total == 0:
        raise DSLMError("no predictions to compute a calibration error on")
    return float(sum(b["n"] / total * abs(b["accuracy"] - b["confidence"])
                     for b in table if b["n"]))


# ---------------------------------------------------------------- corruption levels


@dataclass(frozen=True)
class Level:
    kind: str            # "mask" or "snr"
    value: float         # masked fraction r, or median SNR m

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.value:g}"

    def fits(self, model_kind: str) -> bool:
        return self.kind == "mask" or model_kind == "dsl"


def default_levels(kinds) -> list[Level]:
    """The masked fractions, plus the SNR levels when any model is DSL."""
    levels = [Level("mask", r) for r in MASK_FRACTIONS]
    if "dsl" in set(kinds):
        levels += [Level("snr", m) for m in SNR_MEDIANS]
    return levels


def parse_levels(text: str) -> list[Level]:
    """``mask:0.5,snr:4`` -> levels (r in (0, 1], m > 0)."""
    levels = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        kind, _, value = part.partition(":")
        try:
            v = float(value)
        except ValueError:
            v = math.nan
        if kind == "mask" and 0 < v <= 1 or kind == "snr" and v > 0:
            levels.append(Level(kind, v))
        else:
            raise DSLMError(f"bad corruption level '{part}': use mask:r (0 < r <= 1) or snr:m (m > 0)")
    if not levels:
        raise DSLMError("no corruption levels given")
    return levels


def corrupt(blocks: torch.Tensor, level: Level, generator: torch.Generator):
    """The level's draw on ``blocks`` [N, L]: (scored [N, L] bool, masks or SNRs [N, L], noise
    seed). One draw per level, shared by every model."""
    n, length = blocks.shape
    if level.kind == "mask":
        scored = torch.rand(n, length, generator=generator, dtype=torch.float64) < level.value
        empty = ~scored.any(dim=1)                      # score at least one position per block
        if bool(empty.any()):
            pick = torch.randint(0, length, (int(empty.sum()),), generator=generator)
            scored[empty.nonzero().squeeze(1), pick] = True
        return scored, scored, int(torch.randint(0, 2**62, (1,), generator=generator))
    z = torch.randn(n, length, generator=generator, dtype=torch.float64)
    snr = torch.exp(math.log(level.value) + SNR_LOG_SIGMA * z).float()
    return torch.ones(n, length, dtype=torch.bool), snr, int(torch.randint(0, 2**62, (1,),
                                                                           generator=generator))


@torch.no_grad()
def predictions(model, blocks: torch.Tensor, level: Level, draw, batch_size: int = 16
                ) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) of ``model`` at the scored positions of one level's draw."""
    from dslm.diffusion.channel import localize
    from dslm.sampling.common import model_device
    from dslm.scoring import masked_log_probs

    scored, corruption, noise_seed = draw
    device = model_device(model)
    noise = torch.Generator(device=device).manual_seed(noise_seed)
    confs, hits = [], []
    for s in range(0, blocks.shape[0], batch_size):
        x0 = blocks[s:s + batch_size].to(device)
        keep = scored[s:s + batch_size].to(device)
        if level.kind == "mask":
            xt = torch.where(keep, torch.full_like(x0, model.vocab_size), x0)
            logp = masked_log_probs(model, xt, torch.full((x0.shape[0],), level.value, device=device))
        else:
            y = localize(x0, corruption[s:s + batch_size].to(device), model.embeddings.float(),
                         noise, float(model.snr_max))
            logp = torch.log_softmax(model(y).float(), dim=-1)
        conf, arg = logp.exp().max(dim=-1)
        confs.append(conf[keep].double().cpu().numpy())
        hits.append((arg == x0)[keep].cpu().numpy())
    return np.concatenate(confs), np.concatenate(hits).astype(np.float64)


@dataclass
class CalibrationResult:
    bins: int
    binning: str
    levels: list[dict] = field(default_factory=list)   # per level: name, kind, value, models

    def to_dict(self) -> dict:
        return {"bins": self.bins, "binning": self.binning, "levels": self.levels}


def calibration(models: dict, blocks, levels: list[Level] | None = None, seed: int = 0,
                bins: int = DEFAULT_BINS, binning: str = "width",
                batch_size: int = 16) -> CalibrationResult:
    """ECE and reliability bins of every model (label -> MDLM or DSL model) at every level
    that fits it, on the same ``blocks`` [N, L] and the same corruption draws."""
    if not models:
        raise DSLMError("calibration needs at least one model")
    blocks = torch.as_tensor(np.asarray(blocks), dtype=torch.long)
    if blocks.dim() != 2 or blocks.shape[0] == 0:
        raise DSLMError(f"blocks must be a non-empty [N, L] array of token ids, got {tuple(blocks.shape)}")
    for label, m in models.items():
        if m.kind not in ("mdlm", "dsl"):
            raise DSLMError(f"calibration needs MDLM or DSL denoisers; '{label}' is a '{m.kind}' model")
        if blocks.shape[1] > m.config.seq_len or int(blocks.max()) >= m.vocab_size:
            raise DSLMError(f"the blocks do not fit model '{label}' (length {blocks.shape[1]} vs "
                            f"{m.config.seq_len}, ids up to {int(blocks.max())} vs |V| {m.vocab_size})")
    levels = levels or default_levels(m.kind for m in models.values())
    result = CalibrationResult(bins, binning)
    for i, level in enumerate(levels):
        fitting = {k: m for k, m in models.items() if level.fits(m.kind)}
        if not fitting:
            continue
        draw = corrupt(blocks, level, torch.Generator().manual_seed(int(seed) * 1000 + i))
        row = {"name": level.name, "kind": level.kind, "value": level.value, "models": {}}
        for label, m in fitting.items():
            was_training = m.training
            m.eval()
            try:
                conf, hit = predictions(m, blocks, level, draw, batch_size)
            finally:
                m.train(was_training)
            table = reliability_bins(conf, hit, bins, binning)
            row["models"][label] = {
                "ece": expected_calibration_error(conf, hit, bins, binning),
                "accuracy": float(hit.mean()), "confidence": float(conf.mean()),
                "n": int(conf.size), "bins": table}
        result.levels.append(row)
    return result


# ---------------------------------------------------------------- outputs


def markdown(result: CalibrationResult) -> str:
    labels = list(dict.fromkeys(k for row in result.levels for k in row["models"]))
    binning = "equal-width" if result.binning == "width" else "equal-mass"
    lines = [f"ECE with {result.bins} {binning} bins (lower is better); accuracy / mean "
             "confidence of the top-1 prediction at the scored positions.", "",
             "| level | " + " | ".join(f"{label} ECE | {label} acc / conf" for label in labels)
             + " | predictions |",
             "|---|" + "---|---|" * len(labels) + "---|"]
    for row in result.levels:
        cells = []
        for label in labels:
            r = row["models"].get(label)
            cells += (["-", "-"] if r is None else
                      [f"{r['ece']:.4f}", f"{r['accuracy']:.3f} / {r['confidence']:.3f}"])
        n = max(r["n"] for r in row["models"].values())
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines) + "\n"


def plot(result: CalibrationResult, path) -> None:
    """Reliability diagrams, one panel per level (accuracy vs confidence per bin, the
    diagonal = perfect calibration), and a last panel of ECE per level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(k for row in result.levels for k in row["models"]))
    panels = len(result.levels) + 1
    cols = min(5, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.1 * rows), squeeze=False)
    colors = {label: f"C{i}" for i, label in enumerate(labels)}
    for ax, row in zip(axes.flat, result.levels):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        for label, r in row["models"].items():
            pts = [(b["confidence"], b["accuracy"], b["n"]) for b in r["bins"] if b["n"]]
            xs, ys, ns = zip(*pts)
            size = 8 + 60 * np.sqrt(np.asarray(ns) / max(ns))
            ax.plot(xs, ys, color=colors[label], lw=1)
            ax.scatter(xs, ys, s=size, color=colors[label], label=f"{label} ({r['ece']:.3f})")
        ax.set(xlim=(0, 1), ylim=(0, 1), title=row["name"], xlabel="confidence")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=7, title="ECE", title_fontsize=7, loc="lower right")
    ax = axes.flat[len(result.levels)]
    names = [row["name"] for row in result.levels]
    for label in labels:
        xs = [i for i, row in enumerate(result.levels) if label in row["models"]]
        ax.plot(xs, [result.levels[i]["models"][label]["ece"] for i in xs], "o-",
                color=colors[label], label=label)
    ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
    ax.set(title="ECE per level", ylabel="ECE")
    ax.legend(fontsize=7)
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: CalibrationResult, out_dir) -> dict:
    """``calibration.json``, ``calibration.md``, ``calibration.png`` in ``out_dir``."""
    import json
    from pathlib import Path

    from dslm.io import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "calibration.json", "md": out / "calibration.md",
             "png": out / "calibration.png"}
    atomic_write_text(paths["json"], json.dumps(result.to_dict(), indent=1) + "\n")
    atomic_write_text(paths["md"], markdown(result))
    plot(result, paths["png"])
    return {k: str(v) for k, v in paths.items()}
