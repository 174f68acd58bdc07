"""Tokenizers: GPT-2 (transformers), character-level, and byte-level BPE (tokenizers).

Every tokenizer follows one protocol: ``vocab_size`` (|V|), ``eos_id`` (the document
separator of MDLM's wrap packing), ``encode(str) -> list[int]``,
``encode_batch(list[str]) -> list[list[int]]``, ``decode(ids) -> str`` (special tokens
kept, as in MDLM/ReMDM's reference texts), ``spec() -> dict`` (JSON, stored as
``metadata["tokenizer"]`` of a checkpoint) and ``save(directory)``, which writes
the files :func:`load_tokenizer` needs plus ``dslm_tokenizer.json`` (the spec), so a
saved folder describes itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

from dslm.errors import CheckpointError, ConfigError, DataError, first_line

EOS_TEXT = "<|endoftext|>"
UNK_TEXT = "\ufffd"
SPEC_FILE = "dslm_tokenizer.json"
GPT2_FOLDER_ENV = "DSLM_GPT2_TOKENIZER"   # a hub-format GPT-2 folder used for the name "gpt2"
TOKENIZER_KINDS = ("char", "bpe", "gpt2")


class Tokenizer(Protocol):
    vocab_size: int
    eos_id: int

    def encode(self, text: str) -> list[int]: ...
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def spec(self) -> dict[str, Any]: ...
    def save(self, directory: str | Path) -> Path: ...


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_spec(tokenizer: Tokenizer, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SPEC_FILE).write_text(json.dumps(tokenizer.spec(), indent=2, sort_keys=True) + "\n")
    return directory


class CharTokenizer:
    """One id per character: id 0 = EOS, id 1 = unknown symbol, ids 2.. = ``chars``."""

    EOS_ID, UNK_ID = 0, 1

    def __init__(self, chars: str):
        if len(set(chars)) != len(chars):
            raise DataError("character tokenizer: the alphabet repeats a character")
        self.chars = chars
        self._ids = {c: i + 2 for i, c in enumerate(chars)}
        self.vocab_size = len(chars) + 2
        self.eos_id = self.EOS_ID

    @classmethod
    def train(cls, texts: Iterable[str]) -> "CharTokenizer":
        """The alphabet is the sorted set of characters of the training ``texts``."""
        alphabet: set[str] = set()
        for text in texts:
            alphabet.update(text)
        if not alphabet:
            raise DataError("character tokenizer: the training text is empty")
        return cls("".join(sorted(alphabet)))

    def encode(self, text: str) -> list[int]:
        get = self._ids.get
        return [get(c, self.UNK_ID) for c in text]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        chars = self.chars
        return "".join(chars[i - 2] if 2 <= i < self.vocab_size else EOS_TEXT if i == self.EOS_ID
                       else UNK_TEXT for i in map(int, ids))

    def spec(self) -> dict[str, Any]:
        return {"kind": "char", "vocab_size": self.vocab_size, "chars": self.chars}

    def save(self, directory: str | Path) -> Path:
        return _write_spec(self, directory)


class BPETokenizer:
    """Byte-level BPE (GPT-2 style pre-tokenisation) trained with ``tokenizers``; id 0 = EOS."""

    FILE = "tokenizer.json"

    def __init__(self, backend):
        self.backend = backend
        eos = backend.token_to_id(EOS_TEXT)
        if eos is None:
            raise DataError(f"BPE tokenizer has no {EOS_TEXT} token")
        self.eos_id = eos
        self.vocab_size = backend.get_vocab_size()
        self.sha256 = _sha256(backend.to_str())

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, show_progress: bool = False) -> "BPETokenizer":
        """Learn up to ``vocab_size`` tokens (256 bytes + EOS + merges) from ``texts``."""
        from tokenizers import Tokenizer as Backend, decoders, models, pre_tokenizers, trainers

        backend = Backend(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                      special_tokens=[EOS_TEXT], show_progress=show_progress,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        backend.train_from_iterator(texts, trainer=trainer)
        return cls(backend)

    @classmethod
    def from_file(cls, path: str | Path) -> "BPETokenizer":
        from tokenizers import Tokenizer as Backend

        try:
            return cls(Backend.from_file(str(path)))
        except Exception as e:  # tokenizers raises a bare Exception on a bad file
            raise DataError(f"cannot read BPE tokenizer {path}: {first_line(e)}") from None

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(list(texts))]

    def decode(self, ids: Iterable[int]) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=False)

    def spec(self) -> dict[str, Any]:
        return {"kind": "bpe", "vocab_size": self.vocab_size, "file": self.FILE, "sha256": self.sha256}

    def save(self, directory: str | Path) -> Path:
        directory = _write_spec(self, directory)
        self.backend.save(str(directory / self.FILE))
        return directory


class GPT2Tokenizer:
    """GPT-2's byte-level BPE via ``transformers.GPT2TokenizerFast`` (|V| = 50257, EOS 50256).

    ``name`` is a hub name (``gpt2``) or a local folder in the hub's format
    (``vocab.json`` + ``merges.txt``, or ``tokenizer.json``). Offline, the environment
    variable ``DSLM_GPT2_TOKENIZER`` names such a folder to use for ``gpt2``.
    """

    def __init__(self, name: str = "gpt2"):
        from transformers import GPT2TokenizerFast

        location = (os.environ.get(GPT2_FOLDER_ENV) or name) if name == "gpt2" else name
        if Path(location).is_dir() and not _is_hf_tokenizer_folder(Path(location)):
            raise DataError(f"GPT-2 tokenizer folder {location} holds neither vocab.json + merges.txt "
                            "nor tokenizer.json")
        failure = (f"cannot load the GPT-2 tokenizer '{location}'; without the hub (offline) pass "
                   f"a folder holding vocab.json + merges.txt or set {GPT2_FOLDER_ENV} to one")
        try:
            self.backend = GPT2TokenizerFast.from_pretrained(location)
        except (OSError, ValueError) as e:
            raise DataError(f"{failure} ({e.__class__.__name__})") from None
        if len(self.backend) < 2 or self.backend.eos_token_id is None:  # transformers 5 may not raise
            raise DataError(f"{failure} (got an empty tokenizer)")
        self.backend.model_max_length = 1 << 62  # documents are packed later, never truncated
        self.name = name
        self.vocab_size = len(self.backend)
        self.eos_id = int(self.backend.eos_token_id)
        self.sha256 = _sha256(self.backend.backend_tokenizer.to_str())

    def encode(self, text: str) -> list[int]:
        return self.backend(text, add_special_tokens=False)["input_ids"]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.backend(list(texts), add_special_tokens=False)["input_ids"]

    def decode(self, ids: Iterable[int]) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)

    def spec(self) -> dict[str, Any]:
        return {"kind": "gpt2", "vocab_size": self.vocab_size, "name": self.name, "sha256": self.sha256}

    def save(self, directory: str | Path) -> Path:
        directory = _write_spec(self, directory)
        self.backend.save_pretrained(str(directory))
        return directory


def _is_hf_tokenizer_folder(path: Path) -> bool:
    return (path / "tokenizer.json").is_file() or (
        (path / "vocab.json").is_file() and (path / "merges.txt").is_file())


def load_tokenizer(spec: dict[str, Any], directory: str | Path | None = None) -> Tokenizer:
    """Rebuild the tokenizer described by ``spec`` (files from ``directory`` when it needs them).

    A stored ``sha256`` must match the files found, so a checkpoint never silently
    pairs with another vocabulary.
    """
    if not isinstance(spec, dict) or spec.get("kind") not in TOKENIZER_KINDS:
        kind = spec.get("kind") if isinstance(spec, dict) else spec
        raise DataError(f"unknown tokenizer kind {kind!r}; known: {', '.join(TOKENIZER_KINDS)}")
    kind = spec["kind"]
    if kind == "char":
        tok: Tokenizer = CharTokenizer(str(spec.get("chars", "")))
    elif kind == "bpe":
        if directory is None:
            raise DataError("a BPE tokenizer needs its folder (tokenizer.json)")
        path = Path(directory) / spec.get("file", BPETokenizer.FILE)
        if not path.is_file():
            raise DataError(f"BPE tokenizer file not found: {path}")
        tok = BPETokenizer.from_file(path)
    else:
        use_dir = directory is not None and _is_hf_tokenizer_folder(Path(directory))
        tok = GPT2Tokenizer(str(directory) if use_dir else str(spec.get("name", "gpt2")))
        if use_dir:
            tok.name = str(spec.get("name", "gpt2"))
    want = spec.get("sha256")
    if want and getattr(tok, "sha256", want) != want:
        raise DataError(f"{kind} tokenizer files in {directory} do not match the spec (sha256 differs)")
    if "vocab_size" in spec and tok.vocab_size != spec["vocab_size"]:
        raise DataError(f"{kind} tokenizer has {tok.vocab_size} tokens, its spec says {spec['vocab_size']}")
    return tok


def tokenizer_from_path(path: str | Path) -> Tokenizer:
    """A tokenizer from a folder: a saved dslm tokenizer, the one in a checkpoint's (or a
    training run's) ``tokenizer/`` folder, or a hub-format GPT-2 folder."""
    path = Path(path)
    for inner in ("tokenizer", "checkpoint/tokenizer"):
        if not (path / SPEC_FILE).is_file() and (path / inner / SPEC_FILE).is_file():
            path = path / inner
    if (path / SPEC_FILE).is_file():
        try:
            spec = json.loads((path / SPEC_FILE).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DataError(f"{path / SPEC_FILE} is not valid JSON") from None
        return load_tokenizer(spec, path)
    if _is_hf_tokenizer_folder(path):
        return GPT2Tokenizer(str(path))
    raise DataError(f"{path} holds no tokenizer ({SPEC_FILE}, tokenizer.json or vocab.json + merges.txt)")


def check_vocab(tokenizer: Tokenizer, model_vocab_size: int) -> None:
    """Refuse a tokenizer whose |V| differs from the model's ``vocab_size``."""
    if tokenizer.vocab_size != model_vocab_size:
        raise CheckpointError(f"tokenizer has {tokenizer.vocab_size} tokens but the model expects "
                              f"vocab_size {model_vocab_size}; use the tokenizer the model was trained with")


def tokenizer_writer(tokenizer: Tokenizer) -> Callable[[Path], None]:
    """A ``write_extra`` callback for ``dslm.models.checkpoint.save``: files to ``<ckpt>/tokenizer/``."""
    return lambda ckpt_dir: tokenizer.save(Path(ckpt_dir) / "tokenizer")


def fingerprint(tokenizer: Tokenizer) -> dict[str, Any]:
    """What identifies the token ids (the spec without a GPT-2 file location)."""
    spec = dict(tokenizer.spec())
    if spec.get("kind") == "gpt2":
        spec.pop("name", None)
    return spec


def check_tokenizer_name(name: str) -> None:
    """A config value is a known kind or an existing folder, else a ConfigError."""
    if name not in TOKENIZER_KINDS and not Path(name).is_dir():
        raise ConfigError(f"config key 'data.tokenizer': unknown tokenizer '{name}'; "
                          f"use {', '.join(TOKENIZER_KINDS)} or a tokenizer/checkpoint folder")
