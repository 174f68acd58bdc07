"""The one checkpoint format: a directory with ``model.safetensors`` + ``config.json``.

``config.json`` holds ``{"format": "dslm", "format_version", "dslm_version",
"model": <ModelConfig>, "metadata": {...}}``; the metadata carries what training,
sampling and evaluation share (the tokenizer spec, the training config, metrics).
The unit-sphere table E is a tensor of the state dict (``embed_directions``), so the
exact table is always restored. Optional extra files (a tokenizer folder, training
state) are written into the same directory by a ``write_extra`` callback, inside the
same atomic swap (``dslm.io.atomic_directory``).

``load`` rebuilds the exact model or raises a one-line :class:`CheckpointError`
naming the problem: missing folder or file, not a dslm checkpoint, unknown kind,
wrong kind for the caller, missing/unexpected tensors, shape mismatch, a truncated
or corrupt safetensors file, or NaN/inf weights.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Callable

import torch

from dslm import __version__
from dslm.config import from_dict, to_dict
from dslm.errors import CheckpointError, ConfigError
from dslm.io import atomic_directory, resolve_directory

FORMAT = "dslm"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save(model: torch.nn.Module, path: str | Path, metadata: dict[str, Any] | None = None,
         write_extra: Callable[[Path], None] | None = None,
         state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` (or the given ``state_dict``, e.g. EMA weights) to ``path`` atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    cfg = getattr(model, "config", None)
    if cfg is None:
        raise CheckpointError("model has no .config; only dslm models can be saved")
    tensors = state_dict if state_dict is not None else model.state_dict()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "dslm_version": __version__,
           "model": to_dict(cfg), "metadata": metadata or {}}
    with atomic_directory(path) as tmp:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        if write_extra is not None:
            write_extra(tmp)
    return path


def resolve(path: str | Path) -> Path:
    """The checkpoint folder for ``path``: itself, or ``path/checkpoint`` of a training run."""
    path = resolve_directory(path)
    if path.is_dir() and not (path / CONFIG).exists() and resolve_directory(path / "checkpoint").is_dir():
        path = resolve_directory(path / "checkpoint")
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint directory, checked for format."""
    path = resolve(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} is not a directory (expected {CONFIG} + {WEIGHTS})")
    cfg_path = path / CONFIG
    if not cfg_path.is_file():
        raise CheckpointError(f"checkpoint {path} has no {CONFIG}")
    try:
        doc = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_path} is not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dslm checkpoint ({CONFIG} lacks format: {FORMAT}); "
                              "to load an MDLM checkpoint use dslm.models.hub")
    version = doc.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{cfg_path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer dslm "
                              f"(format {doc.get('format_version')}, this dslm reads {FORMAT_VERSION})")
    if not isinstance(doc.get("model"), dict):
        raise CheckpointError(f"{cfg_path} has no 'model' section")
    return doc


def model_config(doc: dict[str, Any]):
    from dslm.models.config import ModelConfig

    try:
        return from_dict(ModelConfig, doc["model"])
    except ConfigError as e:
        raise CheckpointError(f"checkpoint model config is invalid: {e}") from None


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    wpath = path / WEIGHTS
    if not wpath.is_file():
        raise CheckpointError(f"checkpoint {path} has no {WEIGHTS}")
    try:
        return load_file(str(wpath))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise CheckpointError(f"{wpath} is truncated or corrupt ({msg})") from None


def check_state_dict(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Exact key and shape match, and finite values, or a CheckpointError naming the tensor."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        raise CheckpointError(f"{where} is missing tensor '{missing[0]}'"
                              + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    if unexpected:
        raise CheckpointError(f"{where} has unexpected tensor '{unexpected[0]}'"
                              + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""))
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"{where}: tensor '{k}' has shape {tuple(v.shape)}, "
                                  f"the config expects {tuple(expected[k].shape)}")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{where}: tensor '{k}' holds NaN or inf values")


def _build(cfg, tensors: dict[str, torch.Tensor], meta: bool) -> torch.nn.Module:
    """The model of ``cfg``; on the meta device (no memory) to check shapes first.

    A DSL model takes its table E from the file rather than from the seed.
    """
    import dataclasses

    from dslm.models import MODEL_KINDS

    try:
        with torch.device("meta") if meta else contextlib.nullcontext():
            if cfg.kind != "dsl":
                return MODEL_KINDS[cfg.kind](cfg)
            if "embed_directions" not in tensors:
                raise CheckpointError("checkpoint is missing tensor 'embed_directions'")
            if cfg.input_beta <= 0:   # never re-calibrate on load: the file holds beta
                cfg = dataclasses.replace(cfg, input_beta=1.0)
            return MODEL_KINDS["dsl"](cfg, embeddings=tensors["embed_directions"])
    except (ValueError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        raise CheckpointError(f"checkpoint does not match its config: {reason}") from None


def load(path: str | Path, map_location: str | torch.device = "cpu",
         expect_kind: str | tuple[str, ...] | None = None) -> torch.nn.Module:
    """Rebuild the exact model saved at ``path`` (in eval mode).

    ``expect_kind`` ("dsl", "mdlm", "ar" or a tuple) refuses a checkpoint of another
    kind with a message naming both. The checkpoint's metadata is attached to the
    model as ``model.checkpoint_metadata`` and its folder as ``model.checkpoint_path``.
    """
    from dslm.models import MODEL_KINDS

    path = resolve(path)
    doc = read_config(path)
    cfg = model_config(doc)
    if cfg.kind not in MODEL_KINDS:
        raise CheckpointError(f"checkpoint {path} has unknown model kind '{cfg.kind}'")
    if expect_kind is not None:
        kinds = (expect_kind,) if isinstance(expect_kind, str) else tuple(expect_kind)
        if cfg.kind not in kinds:
            raise CheckpointError(f"checkpoint {path} holds a '{cfg.kind}' model, "
                                  f"this needs {' or '.join(repr(k) for k in kinds)}")
    tensors = read_weights(path)
    check_state_dict(_build(cfg, tensors, meta=True), tensors, f"checkpoint {path}")
    model = _build(cfg, tensors, meta=False)   # sizes now match the file: safe to allocate
    model.load_state_dict(tensors)
    model.to(map_location).eval()
    model.checkpoint_metadata = doc.get("metadata", {})
    model.checkpoint_path = path
    return model
