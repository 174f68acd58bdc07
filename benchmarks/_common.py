"""Shared helpers of the benchmark scripts: device choice, result files, tables."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def machine() -> dict:
    info = {"platform": platform.platform(), "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_result(kind: str, payload: dict, out: str | None = None) -> Path:
    """``payload`` (+ the machine) as JSON: ``out`` if it ends in .json, else
    ``<out or benchmarks/results>/<kind>-<timestamp>.json``."""
    if out and out.endswith(".json"):
        path = Path(out)
    else:
        path = Path(out or RESULTS) / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def training_loss(model, kind: str, x: torch.Tensor, generator: torch.Generator):
    """The training objective of ``kind`` on x (as ``dslm.train`` runs it, default flags)."""
    from dslm.diffusion.losses import ar_loss, dsl_loss, mdlm_loss
    from dslm.diffusion.schedules import ScheduleConfig

    if kind == "dsl":
        return dsl_loss(model, x, ScheduleConfig(), generator)
    if kind == "mdlm":
        return mdlm_loss(model, x, generator)
    return ar_loss(model, x)


def model_config(name: str, kind: str, vocab_size: int | None = None, **overrides):
    """The preset ``name`` for ``kind`` (tiny: |V| = 4096 unless given), dropout off."""
    from dslm.models.config import preset

    extra = {"vocab_size": vocab_size} if vocab_size else ({"vocab_size": 4096} if name == "tiny" else {})
    return preset(name, kind=kind, dropout=0.0, **extra, **overrides)


def table(rows: list[dict], columns: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    line = lambda vals: "  ".join(str(v).rjust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])]
                     + [line([r.get(c, "") for c in columns]) for r in rows])
