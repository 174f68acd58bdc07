"""Export: a hub-ready folder (safetensors, config.json, tokenizer/, README.md model card).

The folder is a dslm checkpoint, so ``open_checkpoint`` (and ``dslm.from_pretrained``)
reads it back; ``hf upload`` publishes it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch

from dslm.errors import CheckpointError
from dslm.models.checkpoint import open_checkpoint, resolve, save

#: Metadata sections the model card shows under their own heading (others: "Metadata").
_CARD_SECTIONS = {"run_config": "Training config", "step": "Training steps", "data": "Data",
                  "source": "Converted from"}


def _yaml_block(value: Any) -> str:
    import yaml

    return "```yaml\n" + yaml.safe_dump(value, sort_keys=True).rstrip() + "\n```"


def _metrics_table(metrics: Mapping[str, Any]) -> str:
    rows = ["| metric | value |", "| --- | --- |"]
    for key, value in sorted(metrics.items()):
        shown = f"{value:.6g}" if isinstance(value, float) else json.dumps(value)
        rows.append(f"| {key} | {shown} |")
    return "\n".join(rows)


def model_card(model: torch.nn.Module, metadata: Mapping[str, Any], name: str) -> str:
    """A README.md for the hub: usage, model config, training config, metrics, tokenizer."""
    from dslm import __version__
    from dslm.config import to_dict
    from dslm.models import count_parameters

    cfg = to_dict(model.config)
    kind = cfg["kind"]
    parts = ["---", "library_name: dslm", "tags:", "- dslm", "- diffusion-language-model",
             f"- {kind}", "---", "", f"# {name}", "",
             f"A dslm `{kind}` model ({count_parameters(model):,} parameters, "
             f"{cfg['n_blocks']} blocks, hidden size {cfg['hidden_size']}, "
             f"{cfg['vocab_size']} tokens, length {cfg['seq_len']}), exported with dslm "
             f"{__version__}.", "", "## Use", "", "```python", "import dslm", "",
             f'model = dslm.from_pretrained("{name}")  # a hub repo id or this folder',
             "```", "", "## Model config", "", _yaml_block(cfg)]
    rest = {k: v for k, v in metadata.items() if k not in ("tokenizer", "metrics")}
    order = list(_CARD_SECTIONS)
    for key, value in sorted(rest.items(), key=lambda kv: (
            order.index(kv[0]) if kv[0] in order else len(order), kv[0])):
        title = _CARD_SECTIONS.get(key, f"Metadata: {key}")
        body = _yaml_block(value) if isinstance(value, (dict, list)) else f"`{value}`"
        parts += ["", f"## {title}", "", body]
    metrics = metadata.get("metrics")
    if isinstance(metrics, Mapping) and metrics:
        parts += ["", "## Metrics", "", _metrics_table(metrics)]
    if metadata.get("tokenizer") is not None:
        parts += ["", "## Tokenizer", "", _yaml_block(metadata["tokenizer"])]
    return "\n".join(parts) + "\n"


def export(source: str | Path, out: str | Path, overwrite: bool = False,
           trust_pickle: bool = False, cache_dir: str | Path | None = None) -> Path:
    """Write a hub-ready folder: model.safetensors, config.json, tokenizer/, README.md.

    ``source`` is anything ``open_checkpoint`` reads (an MDLM source is converted).
    The folder is a dslm checkpoint, so ``open_checkpoint(out)`` loads it back.
    """
    from dslm.io import check_output_folder
    from dslm.locks import folder_lock

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out} is an existing file; export writes a folder")
    if out.exists() and any(p.name != ".dslm.lock" for p in out.iterdir()) and not overwrite:
        raise CheckpointError(f"{out} already exists and is not empty; choose another folder "
                              "or pass overwrite=True (CLI: --overwrite)")
    _check_export_target(source, out)
    check_output_folder(out.parent if str(out.parent) else Path("."))
    with folder_lock(out, kind="whole"):
        return _export(source, out, trust_pickle, cache_dir)


def _check_export_target(source: str | Path, out: Path) -> None:
    """No export onto, into or above its source: the checkpoint, its run folder, its
    tokenizer (``--overwrite`` would destroy them, and a folder inside a checkpoint is
    wiped by its next save)."""
    from dslm.io import check_disjoint

    src = Path(source)
    if not (src.exists() or Path(str(src) + ".old").exists()):
        return                                     # a hub id: nothing local to protect
    ckpt = resolve(src)
    inputs = {"the source checkpoint": ckpt, "the source": src}
    if ckpt.name in ("checkpoint", "checkpoint.old") and (ckpt.parent / "train_state").exists():
        inputs["the source's training run"] = ckpt.parent
    if src.is_file():
        inputs["the source's folder"] = None
    check_disjoint(out, inputs, what="export --out")


def _export(source, out: Path, trust_pickle: bool, cache_dir) -> Path:
    ck = open_checkpoint(source, trust_pickle=trust_pickle, cache_dir=cache_dir)
    model, metadata = ck.model, dict(ck.metadata)
    tokenizer_dir = ck.path / "tokenizer" if ck.path is not None else None

    def write_extra(tmp: Path) -> None:
        if tokenizer_dir is not None and tokenizer_dir.is_dir():
            shutil.copytree(tokenizer_dir, tmp / "tokenizer")
        (tmp / "README.md").write_text(model_card(model, metadata, name=out.name),
                                       encoding="utf-8")

    return save(model, out, metadata=metadata, write_extra=write_extra)
