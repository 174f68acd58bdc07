"""Causal language models that judge samples: generative perplexity and MAUVE features.

Two back-ends share one interface (``encode``, ``nll``, ``features``):

* :class:`HFCausalLM`: any Hugging Face causal LM by hub name or local folder
  (GPT-2 Large is the field protocol). A window w_1..w_n scores w_2..w_n, each given
  its prefix, as the MDLM/ReMDM evaluation does.
* :class:`DslmCausalLM`: a dslm ``ar`` checkpoint (the offline judge). Its BOS slot
  scores every token of a window, w_1 included.

Token lists longer than ``max_length`` are cut into non-overlapping windows for the
likelihood (MDLM truncates instead; samples of the model's length rarely differ). As in
MDLM's evaluation, an EOS token is scored only if it is the first EOS of its window, so
runs of end-of-text padding do not flatter a sampler. Features read the first
``max_length`` tokens (as ``mauve-text`` does): the feature of a text is the final-layer
(final-norm) hidden state at its last token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from dslm.errors import CheckpointError, DSLMError, first_line

EOS_TEXT = "<|endoftext|>"          # the document separator of GPT-2-style vocabularies

GPT2_LARGE = "gpt2-large"


def split_windows(ids: Sequence[int], max_length: int) -> list[list[int]]:
    """Non-overlapping windows of at most ``max_length`` tokens (none for an empty list)."""
    ids = list(ids)
    return [ids[i:i + max_length] for i in range(0, len(ids), max_length)]


def tokenizer_identity(spec: dict) -> dict:
    """What fixes the token ids of a tokenizer spec (a GPT-2 spec's file location does not)."""
    return {k: v for k, v in spec.items() if not (spec.get("kind") == "gpt2" and k == "name")}


def scored_eos_mask(ids: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """1 where a token counts toward the likelihood: every non-EOS token and the first EOS
    of each row (later EOS tokens are padding-like and excluded)."""
    if eos_id is None:
        return torch.ones_like(ids)
    is_eos = ids == eos_id
    return (~is_eos | (is_eos.cumsum(-1) == 1)).long()


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, Lmax] and a 0/1 mask of the real tokens."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids, mask


def _length_sorted_batches(seqs: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]), reverse=True)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class CausalLM:
    """Batched likelihood and last-token features; subclasses supply the network calls."""

    name: str
    max_length: int
    pad_id: int
    eos_id: int | None            # EOS beyond the first of a window is not scored
    empty_id: int                 # stands in for an empty text when a feature is needed
    tokenizer_spec: dict | None = None
    weights_file: Path | None = None    # a local weights file the scores depend on
    device: torch.device
    #: None: the weights' own dtype; torch.bfloat16: the network under bf16 autocast
    #: (log-probabilities still taken in float32; see ``judge_dtype``)
    compute_dtype: torch.dtype | None = None

    def _autocast(self):
        import contextlib

        if self.compute_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.compute_dtype)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        raise NotImplementedError

    def _token_logprobs(self, ids: torch.Tensor, mask: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p of each token it can score, 0/1 mask of those tokens), both [B, L'],
        aligned with the last L' positions of ``ids``."""
        raise NotImplementedError

    def _hidden(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Final-layer hidden states [B, L, H]."""
        raise NotImplementedError

    def accepts_token_ids(self, tokenizer_spec: dict | None) -> bool:
        """True when ids from a tokenizer with ``tokenizer_spec`` can be scored as they are."""
        return (tokenizer_spec is not None and self.tokenizer_spec is not None
                and tokenizer_identity(tokenizer_spec) == tokenizer_identity(self.tokenizer_spec))

    @torch.no_grad()
    def nll_per_text(self, token_lists: Sequence[Sequence[int]], batch_size: int = 8,
                     progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Per text, in input order: (sum of -log p over its scored tokens [N] float64,
        number of scored tokens [N] int64). A text's windows all count toward it."""
        owner, windows = [], []
        for n, ids in enumerate(token_lists):
            for w in split_windows(ids, self.max_length):
                owner.append(n)
                windows.append(w)
        if not windows:
            raise DSLMError("generative perplexity: the texts hold no tokens")
        nll = np.zeros(len(token_lists), dtype=np.float64)
        count = np.zeros(len(token_lists), dtype=np.int64)
        for idx in tqdm(_length_sorted_batches(windows, batch_size), desc=f"gen PPL ({self.name})",
                        disable=not progress, leave=False):
            ids, mask = pad_batch([windows[i] for i in idx], self.pad_id)
            ids, mask = ids.to(self.device), mask.to(self.device)
            with self._autocast():
                logp, scored = self._token_logprobs(ids, mask)
            logp = logp.float()
            scored = scored * scored_eos_mask(ids, self.eos_id)[:, ids.shape[1] - logp.shape[1]:]
            row_nll = -(logp.double() * scored).sum(1).cpu().numpy()
            row_count = scored.sum(1).cpu().numpy()
            for row, i in enumerate(idx):
                nll[owner[i]] += row_nll[row]
                count[owner[i]] += int(row_count[row])
        return nll, count

    def nll(self, token_lists: Sequence[Sequence[int]], batch_size: int = 8,
            progress: bool = False) -> tuple[float, int]:
        """(sum of -log p over scored tokens, number of scored tokens) of a corpus."""
        nll, count = self.nll_per_text(token_lists, batch_size, progress)
        return float(nll.sum()), int(count.sum())

    @torch.no_grad()
    def features(self, token_lists: Sequence[Sequence[int]], batch_size: int = 8,
                 progress: bool = False) -> np.ndarray:
        """Last-token final-layer features [N, H] (float32), in input order."""
        seqs = [list(ids)[:self.max_length] or [self.empty_id] for ids in token_lists]
        if not seqs:
            raise DSLMError("MAUVE features: no texts given")
        out: list[np.ndarray | None] = [None] * len(seqs)
        for idx in tqdm(_length_sorted_batches(seqs, batch_size), desc=f"features ({self.name})",
                        disable=not progress, leave=False):
            ids, mask = pad_batch([seqs[i] for i in idx], self.pad_id)
            h = self._hidden(ids.to(self.device), mask.to(self.device)).float()
            last = mask.sum(1).to(self.device) - 1
            feats = h[torch.arange(len(idx), device=self.device), last].cpu().numpy()
            for row, i in enumerate(idx):
                out[i] = feats[row]
        return np.stack(out).astype(np.float32)


class HFCausalLM(CausalLM):
    """A ``transformers`` causal LM and its tokenizer (hub name or local folder)."""

    def __init__(self, name_or_path: str = GPT2_LARGE, device: str | torch.device = "cpu",
                 max_length: int | None = None, gguf_file: str | None = None,
                 score_first: bool = False, name: str | None = None):
        """``gguf_file``: a GGUF file inside the folder ``name_or_path`` (dequantised to
        float32 on load). ``score_first``: prepend the document separator so the first
        token of every window is scored too (else windows score w_2..w_n)."""
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise DSLMError("a Hugging Face judge needs 'transformers': pip install 'dslm[full]'") from None
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        weights = {"dtype": torch.float32} if gguf_file else {}     # dequantised to float32
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name_or_path, **extra)
            self.model = AutoModelForCausalLM.from_pretrained(name_or_path, **extra, **weights)
        except (OSError, ValueError, ImportError) as e:
            raise DSLMError(f"could not load the causal LM '{name_or_path}' from the hub or a local "
                            f"folder ({first_line(e, 160)}); offline, pass a dslm AR checkpoint") from None
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.name = name or str(name_or_path)
        limit = getattr(self.model.config, "max_position_embeddings", None) or 1024
        self.max_length = min(max_length or limit, limit - int(score_first))
        # the document separator: what a dslm tokenizer's EOS decodes to, when the judge has it
        sep = self.tokenizer.convert_tokens_to_ids(EOS_TEXT) if EOS_TEXT in self.tokenizer.get_vocab() else None
        self.eos_id = sep if sep is not None else self.tokenizer.eos_token_id
        self.pad_id = self.eos_id if self.eos_id is not None else 0
        self.empty_id = self.pad_id
        self.context_id = self.pad_id if score_first else None
        self.tokenizer_spec = {"hf": self.name}

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return list(self.tokenizer(list(texts), add_special_tokens=False)["input_ids"])

    def _token_logprobs(self, ids, mask):
        if self.context_id is not None:     # a separator first: every real token is scored
            ids = torch.cat([torch.full_like(ids[:, :1], self.context_id), ids], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
        return logp, mask[:, 1:]

    def _hidden(self, ids, mask):
        out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return out.hidden_states[-1]


class DslmCausalLM(CausalLM):
    """A dslm ``ar`` model and the tokenizer it was trained with."""

    def __init__(self, model, tokenizer, device: str | torch.device = "cpu",
                 tokenizer_spec: dict | None = None, name: str = "dslm-ar"):
        if getattr(model, "kind", None) != "ar":
            raise CheckpointError(f"a judge or featurizer must be an 'ar' model, "
                                  f"got '{getattr(model, 'kind', type(model).__name__)}'")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.name = name
        self.max_length = int(model.config.seq_len)
        self.eos_id = int(tokenizer.eos_id)
        self.pad_id = self.eos_id
        self.empty_id = self.pad_id
        self.tokenizer_spec = tokenizer_spec

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu"):
        """The judge of any dslm ``ar`` checkpoint source, with its recorded tokenizer."""
        from dslm.models.checkpoint import WEIGHTS, open_checkpoint

        ck = open_checkpoint(path, device, expect_kind="ar")
        judge = cls(ck.model, ck.tokenizer(), device, ck.tokenizer_spec, name=Path(path).name)
        judge.weights_file = ck.path / WEIGHTS if ck.path is not None else None
        return judge

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(self.tokenizer.encode(t)) for t in texts]

    def _token_logprobs(self, ids, mask):
        return self.model.log_likelihood(ids), mask

    def _hidden(self, ids, mask):
        return self.model.hidden_features(ids)


def judge_dtype(spec: str, device: str | torch.device = "cpu") -> str:
    """The judge's compute dtype: ``float32``, ``bfloat16``, or for ``auto`` bfloat16 where
    the device runs it natively (a CPU with AVX-512 BF16 / AMX, a CUDA GPU with bf16), else
    float32. On such a CPU bf16 halves the judge's cost; SmolLM2's gen PPL of held-out
    text moved by 0.1% and of samples by 0.2% (docs/JUDGE.md)."""
    if spec in ("float32", "bfloat16"):
        return spec
    if spec != "auto":
        from dslm.errors import ConfigError

        raise ConfigError(f"judge_dtype must be float32, bfloat16 or auto, got '{spec}'")
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bfloat16" if native else "float32"


def load_lm(spec: str, device: str | torch.device = "cpu", max_length: int | None = None) -> CausalLM:
    """A dslm AR checkpoint path, or a Hugging Face causal LM name/folder (e.g. gpt2-large)."""
    from dslm.models.checkpoint import is_dslm_checkpoint

    if is_dslm_checkpoint(spec):
        return DslmCausalLM.from_checkpoint(spec, device)
    return HFCausalLM(spec, device, max_length)
