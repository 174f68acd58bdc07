"""MDLM checkpoints read onto dslm's MDLMDenoiser, and where a checkpoint source lives.

``dslm.models.checkpoint.open_checkpoint`` is the one loader; this module finds a
source (a local path, or a hub repo id fetched with ``snapshot_download``), tells its
format and reads the MDLM ones:
  * a folder in the layout of the hub repo ``kuleshov-group/mdlm-owt``: ``config.json``
    (``model_type: mdlm``, ``hidden_dim``, ``n_blocks``, ``n_heads``, ``cond_dim``,
    ``vocab_size`` counting [MASK], ``model_length``, ``dropout``, ``time_conditioning``)
    and ``model.safetensors`` (or ``pytorch_model.bin``) with ``backbone.*`` keys;
  * MDLM's Lightning ``.ckpt`` (EMA weights ``ckpt['ema']['shadow_params']``, a list in
    parameter order, preferred over ``ckpt['state_dict']``'s ``backbone.*`` tensors);

MDLM's DiT and dslm's share parameter names, so the mapping is the identity on
``backbone.*`` keys; MDLM's ``rotary_emb.inv_freq`` buffer is checked against dslm's
rotary table (base 10000) and dropped. Any other key or shape is refused by name.
Pickles are read with ``torch.load(weights_only=True)``; MDLM's real ``.ckpt`` pickles
its tokenizer and config, so it loads only with ``trust_pickle=True``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from dslm.errors import CheckpointError, ConfigError, DSLMError, first_line
from dslm.models import checkpoint
from dslm.models.config import PRESETS, ModelConfig

MDLM_OWT = "kuleshov-group/mdlm-owt"
GPT2_VOCAB = 50257
#: Files fetched from a hub repo (weights, configs, a dslm tokenizer folder, the card).
HUB_PATTERNS = ["*.json", "*.safetensors", "pytorch_model.bin", "tokenizer/*", "README.md"]
ROTARY_BASE = 10_000.0
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def gpt2_tokenizer_spec() -> dict[str, Any]:
    """The tokenizer spec of MDLM's OpenWebText checkpoints, as ``dslm.data.tokenizers`` reads it.

    GPT-2 BPE with 50257 ids; no ``sha256``, since the files are fetched (or passed as a
    folder) when the tokenizer is loaded, not shipped with the MDLM checkpoint.
    """
    return {"kind": "gpt2", "name": "gpt2", "vocab_size": GPT2_VOCAB}


# ---------------------------------------------------------------- where a source lives

def download(repo_id: str, cache_dir: str | Path | None = None,
             revision: str | None = None) -> Path:
    """Fetch a hub repo (weights and configs only) into the local cache; its folder."""
    from dslm.extras import require
    from dslm.hubnet import ensure_hub, in_hub_cache

    require("huggingface_hub", f"fetching '{repo_id}' from the hub")
    try:
        ensure_hub("it", cached=in_hub_cache(repo_id, cache_dir=cache_dir))
    except DSLMError as e:
        raise CheckpointError(f"could not fetch '{repo_id}' from the Hugging Face hub: {e}") from None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir,
                                      allow_patterns=HUB_PATTERNS))
    except Exception as e:  # network, offline mode, missing repo: all mean "not available"
        raise CheckpointError(
            f"could not fetch '{repo_id}' from the Hugging Face hub ({e.__class__.__name__}: "
            f"{first_line(e, 160)}); check the network and HF_HUB_OFFLINE, or pass a local folder "
            "or .ckpt file") from None


def locate(source: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A local path for ``source``: an existing file/folder (it wins over a repo id of the
    same name; a run folder means its ``checkpoint/``), or a downloaded hub repo."""
    path = Path(source)
    resolved = checkpoint.resolve(path)
    if resolved.exists():
        return resolved
    if isinstance(source, str) and _REPO_ID.match(source):
        return download(source, cache_dir=cache_dir)
    raise CheckpointError(f"checkpoint not found: {source} (neither a local path nor a "
                          f"hub repo id like {MDLM_OWT})")


def source_format(path: Path) -> str:
    """``dslm``, ``mdlm-hf`` (hub folder layout) or ``lightning`` (a ``.ckpt`` file)."""
    if path.is_file():
        return "lightning"
    cfg = path / "config.json"
    if not cfg.is_file():
        raise CheckpointError(f"{path} has no config.json (not a dslm or MDLM checkpoint folder)")
    doc = _read_json(cfg)
    if doc.get("format") == checkpoint.FORMAT:
        return "dslm"
    if doc.get("model_type") == "mdlm":
        return "mdlm-hf"
    raise CheckpointError(f"{cfg} is neither a dslm checkpoint (format: dslm) nor an MDLM "
                          f"one (model_type: mdlm); got model_type={doc.get('model_type')!r}")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return doc


# ---------------------------------------------------------------- MDLM's layout and sizes

def mdlm_parameter_names(n_blocks: int) -> list[str]:
    """MDLM DiT parameter names in registration order (the order of EMA ``shadow_params``)."""
    names = ["vocab_embed.embedding", "sigma_map.mlp.0.weight", "sigma_map.mlp.0.bias",
             "sigma_map.mlp.2.weight", "sigma_map.mlp.2.bias"]
    block = ["norm1.weight", "attn_qkv.weight", "attn_out.weight", "norm2.weight",
             "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias",
             "adaLN_modulation.weight", "adaLN_modulation.bias"]
    names += [f"blocks.{i}.{p}" for i in range(n_blocks) for p in block]
    names += ["output_layer.norm_final.weight", "output_layer.linear.weight",
              "output_layer.linear.bias", "output_layer.adaLN_modulation.weight",
              "output_layer.adaLN_modulation.bias"]
    return [f"backbone.{n}" for n in names]


def mdlm_model_config(*, vocab_with_mask: int, hidden_size: int, n_blocks: int, n_heads: int,
                      cond_dim: int, seq_len: int, dropout: float, time_conditioning: bool,
                      mlp_ratio: int = 4, where: str = "checkpoint") -> ModelConfig:
    """dslm's ModelConfig for an MDLM DiT.

    ``vocab_with_mask`` counts [MASK] (MDLM's ``vocab_size``); dslm's excludes it. The
    DSL-only ``embed_dim`` is the ``small`` preset's, the default for a fine-tune start.
    """
    try:
        cfg = dataclasses.replace(
            ModelConfig(), kind="mdlm", embed_dim=PRESETS["small"]["embed_dim"],
            vocab_size=int(vocab_with_mask) - 1, hidden_size=int(hidden_size),
            n_blocks=int(n_blocks), n_heads=int(n_heads), cond_dim=int(cond_dim),
            seq_len=int(seq_len), dropout=float(dropout), mlp_ratio=int(mlp_ratio),
            time_conditioning=bool(time_conditioning))
        cfg.validate()
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: its sizes do not make a valid model ({e})") from None
    return cfg


def _config_from_hf(doc: Mapping[str, Any], where: str) -> ModelConfig:
    """Read the hub repo's ``config.json`` (MDLMConfig fields; defaults as MDLMConfig's)."""
    for key in ("vocab_size", "hidden_dim", "n_blocks", "n_heads", "cond_dim"):
        if not isinstance(doc.get(key), int) or isinstance(doc.get(key), bool):
            raise CheckpointError(f"{where} needs an integer '{key}', got {doc.get(key)!r}")
    return mdlm_model_config(
        vocab_with_mask=doc["vocab_size"], hidden_size=doc["hidden_dim"],
        n_blocks=doc["n_blocks"], n_heads=doc["n_heads"], cond_dim=doc["cond_dim"],
        seq_len=doc.get("model_length", 1024), dropout=doc.get("dropout", 0.1),
        time_conditioning=doc.get("time_conditioning", False), where=where)


def _lookup(tree: Any, *path: str) -> Any:
    """``tree[path[0]][path[1]]...`` on dicts or OmegaConf configs; None when absent."""
    for key in path:
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _config_from_lightning(tensors: Mapping[str, torch.Tensor], hparams: Any,
                           where: str) -> ModelConfig:
    """Sizes from the tensor shapes; length, dropout, heads, time input from the config."""
    need = ("backbone.vocab_embed.embedding", "backbone.sigma_map.mlp.0.weight",
            "backbone.blocks.0.mlp.0.weight")
    for key in need:
        if key not in tensors:
            raise CheckpointError(f"{where} has no tensor '{key}' (not an MDLM DiT checkpoint)")
    vocab, hidden = tensors[need[0]].shape
    blocks = {int(m.group(1)) for k in tensors if (m := re.match(r"backbone\.blocks\.(\d+)\.", k))}
    config = _lookup(hparams, "config")
    n_heads = _lookup(config, "model", "n_heads")
    if n_heads is None:
        inv_freq = tensors.get("backbone.rotary_emb.inv_freq")
        if inv_freq is None:
            raise CheckpointError(f"{where} states no head count (no config, no rotary table)")
        n_heads = hidden // (2 * inv_freq.numel())
    time_cond = _lookup(config, "time_conditioning")
    if time_cond is None:
        time_cond = _lookup(config, "algo", "time_conditioning")
    dropout = _lookup(config, "model", "dropout")
    return mdlm_model_config(
        vocab_with_mask=vocab, hidden_size=hidden, n_blocks=len(blocks), n_heads=n_heads,
        cond_dim=tensors[need[1]].shape[0], seq_len=_lookup(config, "model", "length") or 1024,
        dropout=0.1 if dropout is None else dropout, time_conditioning=bool(time_cond),
        mlp_ratio=tensors[need[2]].shape[0] // hidden, where=where)


# ---------------------------------------------------------------- reading the weights

def torch_load(path: Path, trust_pickle: bool) -> Any:
    """``torch.load`` with weights only, or full unpickling when the user trusts the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except ModuleNotFoundError as e:
        raise CheckpointError(f"{path} pickles objects of the package '{e.name}', which is not "
                              f"installed (pip install {e.name})") from None
    except Exception as e:  # noqa: BLE001 - unpickling raises many types; all mean "unreadable"
        text = str(e)
        if not trust_pickle and "Unsupported global" in text:
            try:
                names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            except Exception:  # noqa: BLE001 - the names only decorate the message
                names = []
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise CheckpointError(
                f"{path} pickles Python objects ({shown or 'not plain tensors'}), which "
                "safe loading refuses; if you trust this file pass trust_pickle=True "
                "(CLI: --trust-checkpoint)") from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint "
                              f"({first_line(e, 160)})") from None


def _read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        return checkpoint.read_weights(folder)
    if (folder / "pytorch_model.bin").is_file():
        state = torch_load(folder / "pytorch_model.bin", trust_pickle=False)
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{folder / 'pytorch_model.bin'} does not hold a state dict")
        return dict(state)
    raise CheckpointError(f"{folder} has neither model.safetensors nor pytorch_model.bin")


def _tensors_of_lightning(ckpt: Any, cfg: ModelConfig, where: str) -> dict[str, torch.Tensor]:
    """EMA weights when the checkpoint has them (mapped by position), else ``state_dict``."""
    state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("backbone.")}
    shadow = _lookup(ckpt, "ema", "shadow_params")
    if not shadow:
        return state
    names = mdlm_parameter_names(cfg.n_blocks)
    if len(shadow) != len(names):
        raise CheckpointError(f"{where}: its EMA holds {len(shadow)} tensors, an MDLM DiT with "
                              f"{cfg.n_blocks} blocks has {len(names)} parameters")
    out = dict(state)
    for name, tensor in zip(names, shadow):
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{where}: EMA entry for '{name}' is not a tensor")
        out[name] = tensor
    return out


def _map_onto(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor],
              where: str) -> dict[str, torch.Tensor]:
    """MDLM ``backbone.*`` tensors -> dslm's state dict (checks and drops ``inv_freq``)."""
    out = {k: v.detach().to(torch.float32) for k, v in tensors.items()}
    inv_freq = out.pop("backbone.rotary_emb.inv_freq", None)
    if inv_freq is not None:
        expected = model.backbone.rotary_emb.inv_freq
        if inv_freq.shape != expected.shape or not torch.allclose(inv_freq, expected, rtol=1e-2):
            raise CheckpointError(f"{where}: tensor 'backbone.rotary_emb.inv_freq' is not the "
                                  f"rotary table of head size {model.config.head_dim}, base "
                                  f"{ROTARY_BASE:g} (other n_heads or rotary base)")
    checkpoint.check_state_dict(model, out, where)
    return out


def read_mdlm(path: Path, fmt: str, trust_pickle: bool = False,
              map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """(MDLMDenoiser in eval mode, metadata) of an ``mdlm-hf`` folder or ``lightning`` file.

    The metadata records the tokenizer when the folder holds a dslm ``tokenizer/`` or
    when the vocabulary is GPT-2's (MDLM's OpenWebText checkpoints).
    """
    from dslm.limits import check_model_memory
    from dslm.models.mdlm import MDLMDenoiser

    where = f"MDLM checkpoint {path}"
    if fmt == "mdlm-hf":
        cfg = _config_from_hf(_read_json(path / "config.json"), f"{path / 'config.json'}")
        tensors = _read_hf_weights(path)
    else:
        ckpt = torch_load(path, trust_pickle)
        if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
            raise CheckpointError(f"{where} has no 'state_dict' (not a Lightning checkpoint)")
        cfg = _config_from_lightning(ckpt["state_dict"], ckpt.get("hyper_parameters"), where)
        tensors = _tensors_of_lightning(ckpt, cfg, where)
    check_model_memory(cfg, where, copies=2, error=CheckpointError)
    model = MDLMDenoiser(cfg)
    model.load_state_dict(_map_onto(model, tensors, where))
    metadata: dict[str, Any] = {}
    spec_file = path / "tokenizer" / "dslm_tokenizer.json"
    if path.is_dir() and spec_file.is_file():
        metadata["tokenizer"] = _read_json(spec_file)
    elif cfg.vocab_size == GPT2_VOCAB:
        metadata["tokenizer"] = gpt2_tokenizer_spec()
    return model.to(map_location).eval(), metadata
