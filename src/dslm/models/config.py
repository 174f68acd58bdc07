"""Model sizes and kinds.

``kind`` picks the head on the shared DiT backbone:
  * ``dsl``:  continuous input y in R^{L x d}, no time input, logits over V;
  * ``mdlm``: token ids over V + [MASK], optional time input, SUBS output;
  * ``ar``:   causal next-token model (the offline judge and the AR baseline).

Presets (the one place each size is written; a run file names one as ``model.preset``):
``tiny`` (tests, CPU demos) and ``small`` (MDLM's OpenWebText size).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dslm.config import choices
from dslm.errors import ConfigError

PRESETS: dict[str, dict] = {
    "tiny": dict(hidden_size=128, n_blocks=4, n_heads=4, cond_dim=64, seq_len=128),
    "small": dict(hidden_size=768, n_blocks=12, n_heads=12, cond_dim=128, seq_len=1024,
                  vocab_size=50257, embed_dim=64, dropout=0.1),
}


#: Upper bounds of the size fields: far above any real model, they stop a corrupt or
#: hostile config from asking for absurd allocations.
LIMITS = {"vocab_size": 2 ** 24, "seq_len": 2 ** 20, "hidden_size": 2 ** 16, "n_blocks": 1024,
          "n_heads": 1024, "cond_dim": 2 ** 16, "mlp_ratio": 64, "embed_dim": 2 ** 16}


@dataclass
class ModelConfig:
    kind: str = choices("dsl", "mdlm", "ar", default="dsl")
    vocab_size: int = 256          # |V|, real tokens only ([MASK] is added by MDLM)
    seq_len: int = 128             # longest sequence the model is built for
    hidden_size: int = 128
    n_blocks: int = 4
    n_heads: int = 4
    cond_dim: int = 64             # adaLN conditioning width
    mlp_ratio: int = 4
    dropout: float = 0.0
    time_conditioning: bool = False  # MDLM: feed sigma(t); False feeds zeros (as mdlm-owt)
    shared_embed_init: float = 0.0   # MDLM: init scale of one direction shared by all input rows
    # DSL channel and input converter (the DSL reference defaults; docs/MATH.md §4)
    embed_dim: int = 32            # d of the unit-sphere table E
    embed_seed: int = 0            # seed of the random table E
    freeze_embed: bool = True      # E fixed (True) or trained with rows kept on the sphere
    snr_max: float = 100.0         # finite SNR that stands for "revealed"
    input_beta: float = 0.0        # converter sharpness beta; 0 = automatic (see dsl.py)
    # how beta = 0 is resolved: calibrated (a committed token reads >= mask_weight of its
    # own slot) or inv_sqrt_d (1 / sqrt(embed_dim), the reference code's init)
    beta_init: str = choices("calibrated", "inv_sqrt_d", default="calibrated")
    mask_weight: float = 0.99      # converter weight of the [MASK] slot at y = 0
    norm_conditioning: bool = False  # DSL: condition adaLN on mean ||y_i|| (still y-only)
    # Engineering
    activation_checkpointing: bool = False

    def validate(self) -> None:
        for key in ("vocab_size", "seq_len", "hidden_size", "n_blocks", "n_heads",
                    "cond_dim", "mlp_ratio", "embed_dim"):
            value, limit = getattr(self, key), LIMITS[key]
            if not 1 <= value <= limit:
                raise ConfigError(f"config key 'model.{key}' must be in [1, {limit}], got {value}")
        if self.hidden_size % self.n_heads:
            raise ConfigError(
                f"config key 'model.hidden_size' ({self.hidden_size}) must be divisible by "
                f"'model.n_heads' ({self.n_heads})")
        if (self.hidden_size // self.n_heads) % 2:
            raise ConfigError("model.hidden_size / model.n_heads must be even (rotary embeddings)")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"config key 'model.dropout' must be in [0, 1), got {self.dropout}")
        if self.shared_embed_init < 0:
            raise ConfigError(f"config key 'model.shared_embed_init' must be >= 0, got {self.shared_embed_init}")
        if self.snr_max <= 0:
            raise ConfigError(f"config key 'model.snr_max' must be > 0, got {self.snr_max}")
        if not 0.0 < self.mask_weight < 1.0:
            raise ConfigError(f"config key 'model.mask_weight' must be in (0, 1), got {self.mask_weight}")

    @staticmethod
    def preset_values(name: str) -> dict:
        """The fields of size preset ``name`` (``model.preset`` in a run file or override)."""
        return preset_values(name)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads


def preset_values(name: str) -> dict:
    """The fields of size preset ``name`` (a run file's ``model.preset``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset '{name}'; allowed: {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def preset(name: str, **overrides) -> ModelConfig:
    """A ModelConfig from a named size preset, with field overrides."""
    values = {**preset_values(name), **overrides}
    cfg = dataclasses.replace(ModelConfig(), **values)
    cfg.validate()
    return cfg
