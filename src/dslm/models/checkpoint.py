"""The one checkpoint format: a directory with ``model.safetensors`` + ``config.json``.

``config.json`` holds ``{"format": "dslm", "format_version", "dslm_version",
"model": <ModelConfig>, "metadata": {...}}``; the metadata carries what training,
sampling and evaluation share (the tokenizer spec, the training config, metrics).
The unit-sphere table E is a tensor of the state dict (``embed_directions``), so the
exact table is always restored. Optional extra files (a tokenizer folder, training
state) are written into the same directory by a ``write_extra`` callback, inside the
same atomic swap (``dslm.io.atomic_directory``).

``open_checkpoint`` (the one loader, for every source) rebuilds the exact model or raises a one-line :class:`CheckpointError`
naming the problem: missing folder or file, not a dslm checkpoint, unknown kind,
wrong kind for the caller, missing/unexpected tensors, shape mismatch, a truncated
or corrupt safetensors file, or NaN/inf weights.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from dslm import __version__
from dslm.config import from_dict, to_dict
from dslm.errors import CheckpointError, ConfigError, first_line
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
                              "open_checkpoint reads MDLM sources")
    version = doc.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{cfg_path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer dslm "
                              f"(format {doc.get('format_version')}, this dslm reads {FORMAT_VERSION})")
    if not isinstance(doc.get("model"), dict):
        raise CheckpointError(f"{cfg_path} has no 'model' section")
    return doc


def is_dslm_checkpoint(source: str | Path) -> bool:
    """A local dslm checkpoint or training-run folder (``config.json`` with ``format: dslm``)."""
    try:
        read_config(source)
    except CheckpointError:
        return False
    return True


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
        raise CheckpointError(f"{wpath} is truncated or corrupt ({first_line(e)})") from None


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


def build_from_tensors(cfg, tensors: dict[str, torch.Tensor], meta: bool = False) -> torch.nn.Module:
    """The model of ``cfg`` for saved ``tensors``, on the meta device (no memory) to check
    shapes first. A class that needs more than its config (DSL: the table E from the
    file) says so in ``from_tensors``; the others are built from the config and loaded."""
    from dslm.models import MODEL_KINDS

    cls = MODEL_KINDS[cfg.kind]
    try:
        with torch.device("meta") if meta else contextlib.nullcontext():
            return cls.from_tensors(cfg, tensors) if hasattr(cls, "from_tensors") else cls(cfg)
    except (ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint does not match its config: {first_line(e)}") from None


@dataclass(frozen=True)
class Checkpoint:
    """A model and what its checkpoint records, whatever the source format.

    ``path``: the dslm checkpoint folder (None for a converted MDLM source);
    ``metadata``: the parsed ``metadata`` section (tokenizer spec, run config, step,
    metrics, data, source); ``model``: None when opened with ``weights=False``.
    """

    model: torch.nn.Module | None
    config: Any                                   # the ModelConfig
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    source: str = ""

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def step(self) -> int | None:
        return self.metadata.get("step")

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.metadata.get("metrics") or {})

    @property
    def tokenizer_spec(self) -> dict[str, Any] | None:
        spec = self.metadata.get("tokenizer")
        return spec if isinstance(spec, dict) else None

    def tokenizer(self):
        """The tokenizer the checkpoint records (``metadata["tokenizer"]`` + its ``tokenizer/``
        folder), checked against the model's vocabulary."""
        from dslm.data.tokenizers import check_vocab, load_tokenizer
        from dslm.errors import DataError

        if self.tokenizer_spec is None:
            raise CheckpointError(f"checkpoint {self.path or self.source} records no tokenizer "
                                  "(metadata['tokenizer'] is missing)")
        folder = self.path / "tokenizer" if self.path is not None else None
        try:
            tok = load_tokenizer(self.tokenizer_spec, folder if folder and folder.is_dir() else None)
        except DataError as e:
            raise CheckpointError(f"checkpoint {self.path or self.source}: {e}") from None
        check_vocab(tok, int(self.config.vocab_size))
        return tok

    def run_config(self):
        """The ``RunConfig`` the model was trained with (metadata ``run_config``), or None."""
        from dslm.train.config import RunConfig

        saved = self.metadata.get("run_config")
        if not isinstance(saved, dict):
            return None
        try:
            return from_dict(RunConfig, saved)
        except ConfigError as e:
            raise CheckpointError(f"checkpoint {self.path} holds an invalid run config: {e}") from None

    def data_config(self):
        """The ``DataConfig`` training stored in ``metadata["run_config"]["data"]``."""
        from dslm.data.config import DataConfig

        data = (self.metadata.get("run_config") or {}).get("data")
        if not isinstance(data, dict):
            raise CheckpointError(f"checkpoint {self.path or self.source} records no data config; "
                                  "pass --reference FILE.txt/.jsonl instead of 'validation'")
        return from_dict(DataConfig, data)


def _check_kind(kind: str, expect_kind, where) -> None:
    from dslm.models import MODEL_KINDS

    if kind not in MODEL_KINDS:
        raise CheckpointError(f"checkpoint {where} has unknown model kind '{kind}'")
    kinds = (expect_kind,) if isinstance(expect_kind, str) else tuple(expect_kind or ())
    if kinds and kind not in kinds:
        raise CheckpointError(f"checkpoint {where} holds a '{kind}' model, "
                              f"this needs {' or '.join(repr(k) for k in kinds)}")


def open_checkpoint(source: str | Path, map_location: str | torch.device = "cpu",
                    expect_kind: str | tuple[str, ...] | None = None, trust_pickle: bool = False,
                    cache_dir: str | Path | None = None, weights: bool = True) -> Checkpoint:
    """The one loader: a :class:`Checkpoint` (model in eval mode) from any source.

    ``source``: a dslm checkpoint or training-run folder (an exported folder is one),
    an MDLM folder in the hub layout, MDLM's Lightning ``.ckpt`` (full unpickling only
    with ``trust_pickle``), or a hub repo id (fetched; see ``dslm.models.mdlm_import``).
    ``expect_kind`` refuses another model kind naming both; ``weights=False`` reads
    only a dslm folder's config and metadata (``model`` is then None).
    """
    from dslm.models import mdlm_import

    path = mdlm_import.locate(source, cache_dir)
    fmt = mdlm_import.source_format(path)
    if fmt != "dslm":
        _check_kind("mdlm", expect_kind, source)
        model, metadata = mdlm_import.read_mdlm(path, fmt, trust_pickle, map_location)
        return Checkpoint(model, model.config, {"source": str(source), **metadata}, None, str(source))
    doc = read_config(path)
    cfg = model_config(doc)
    _check_kind(cfg.kind, expect_kind, path)
    metadata = doc.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"checkpoint {path}: 'metadata' in {CONFIG} must be an object")
    if not weights:
        return Checkpoint(None, cfg, metadata, path, str(source))
    tensors = read_weights(path)
    check_state_dict(build_from_tensors(cfg, tensors, meta=True), tensors, f"checkpoint {path}")
    model = build_from_tensors(cfg, tensors)   # sizes now match the file: safe to allocate
    model.load_state_dict(tensors)
    return Checkpoint(model.to(map_location).eval(), cfg, metadata, path, str(source))
