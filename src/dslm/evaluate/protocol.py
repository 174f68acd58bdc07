"""Sweeps as files: a YAML file of ``SweepConfig`` keys (``dslm sweep --config FILE``).

The paper's OpenWebText protocol is ``configs/sweeps/owt-protocol.yaml``
(``--protocol owt``; docs/PROTOCOL.md explains each choice). A file's keys apply first,
then the command's flags; sampler options merge key by key, the user's on top.
"""

from __future__ import annotations

from pathlib import Path

from dslm.config import from_dict, read_yaml, update
from dslm.errors import ConfigError

#: ``--protocol NAME`` -> the sweep file under the repository's ``configs/sweeps/``.
PROTOCOLS = {"owt": "owt-protocol.yaml"}


def protocol_file(name: str) -> Path:
    """The sweep file of protocol ``name``: ``configs/sweeps/`` here or in the repository."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol '{name}'; allowed: {', '.join(PROTOCOLS)}")
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        path = root / "configs" / "sweeps" / PROTOCOLS[name]
        if path.is_file():
            return path
    raise ConfigError(f"protocol '{name}': configs/sweeps/{PROTOCOLS[name]} not found; "
                      "run from the repository or pass --config FILE")


def apply_sweep_file(cfg, path: str | Path):
    """``cfg`` with the keys of the sweep file ``path`` applied (``data_config`` becomes a
    ``DataConfig``); ``cfg.sampler_options`` (what the user passed) win key by key."""
    from dslm.data.config import DataConfig

    values = read_yaml(path)
    if isinstance(values.get("data_config"), dict):
        values["data_config"] = from_dict(DataConfig, values["data_config"])
    merged = {s: dict(o) for s, o in (values.pop("sampler_options", None) or {}).items()}
    for sampler, options in (cfg.sampler_options or {}).items():
        merged[sampler] = {**merged.get(sampler, {}), **options}
    return update(cfg, {**values, "sampler_options": merged})


def apply_protocol(cfg, name: str):
    """``cfg`` with the protocol ``name``'s sweep file applied."""
    return apply_sweep_file(cfg, protocol_file(name))
