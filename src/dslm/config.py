"""One config system for training, sampling and evaluation.

Configs are (nested) dataclasses. They are read from YAML files and overridden from
the command line with dotted ``key=value`` pairs (``train.lr=1e-3``,
``model.n_blocks=6``). Every key is checked: an unknown key names the allowed keys
(with a close match when there is one), and a value of the wrong type or outside its
allowed set names the key and what it accepts.

Each section's dataclass lives beside the code that uses it (``ModelConfig`` in
``dslm.models.config``, ``DataConfig`` in ``dslm.data.config``, ...); this module only
holds the machinery.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml

from dslm.errors import ConfigError


#: Largest integer magnitude a config accepts (exact in float64, JSON and YAML).
MAX_INT = 2 ** 53


def choices(*allowed: str, default: str):
    """A string field restricted to ``allowed`` values (checked on every update)."""
    return dataclasses.field(default=default, metadata={"choices": tuple(allowed)})


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _suggest(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; allowed: {', '.join(sorted(allowed))}"


def _coerce(path: str, value: Any, tp: Any, field: dataclasses.Field | None) -> Any:
    """Convert ``value`` to the annotated type ``tp`` or raise a ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        last: ConfigError | None = None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(path, value, a, field)
            except ConfigError as e:  # try the next member of the union
                last = e
        raise last or ConfigError(f"config key '{path}': bad value {value!r}")
    if tp is Any:
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{path}': expected a list, got {value!r}")
        inner = args[0] if args else Any
        out = [_coerce(f"{path}[{i}]", v, inner, None) for i, v in enumerate(value)]
        return out if origin is list else tuple(out)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}': expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"config key '{path}': expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{path}': expected an integer, got {value!r}")
        out = None
        if isinstance(value, int):
            out = value
        elif isinstance(value, float) and value.is_integer():
            out = int(value)
        elif isinstance(value, str):
            try:
                out = int(value.strip())
            except ValueError:
                try:
                    f = float(value)
                    if f.is_integer():
                        out = int(f)
                except (ValueError, OverflowError):
                    pass
        if out is None:
            raise ConfigError(f"config key '{path}': expected an integer, got {value!r}")
        if abs(out) > MAX_INT:
            raise ConfigError(f"config key '{path}': {out} is out of range (|value| <= 2**53)")
        if path.rsplit(".", 1)[-1].endswith("seed") and out < 0:
            raise ConfigError(f"config key '{path}': a seed must be >= 0, got {out}")
        return out
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{path}': expected a number, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{path}': expected a number, got {value!r}") from None
        if math.isnan(f):
            raise ConfigError(f"config key '{path}': NaN is not allowed")
        if math.isinf(f):
            raise ConfigError(f"config key '{path}': expected a finite number, got {value!r}")
        return f
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"config key '{path}': expected a string, got {value!r}")
        value = "" if value is None else str(value)
        allowed = field.metadata.get("choices") if field is not None else None
        if allowed and value not in allowed:
            raise ConfigError(
                f"config key '{path}': unknown value '{value}'; allowed: {', '.join(allowed)}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{path}': expected a mapping, got {value!r}")
        return update(tp(), value, prefix=path)
    return value


def update(cfg, values: Mapping[str, Any], prefix: str = ""):
    """Return a copy of dataclass ``cfg`` with nested ``values`` applied and checked."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"config section '{prefix or '<root>'}' must be a mapping, got {values!r}")
    if "preset" in values and hasattr(cfg, "preset_values"):   # a named preset, then the keys
        values = {**cfg.preset_values(str(values["preset"])),
                  **{k: v for k, v in values.items() if k != "preset"}}
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    hints = _field_types(type(cfg))
    changes = {}
    for key, value in values.items():
        key = str(key)
        path = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            raise ConfigError(f"unknown config key '{path}'" + _suggest(key, list(fields)))
        tp = hints[key]
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            changes[key] = update(current, value, prefix=path)
        else:
            changes[key] = _coerce(path, value, tp, fields[key])
    new = dataclasses.replace(cfg, **changes)
    check = getattr(new, "validate", None)
    if callable(check):
        check()
    return new


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override '{pair}' is not of the form key=value")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{pair}' has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override '{pair}' conflicts with an earlier override of '{part}'")
            node = nxt
        node[parts[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with clear errors for a missing, unreadable or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not valid UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {p} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return data


def load(cls, path: str | Path | None = None, overrides: list[str] | None = None,
         base: Any = None):
    """Build config ``cls`` from defaults (or ``base``), then a YAML file, then overrides."""
    cfg = base if base is not None else cls()
    if path is not None:
        cfg = update(cfg, read_yaml(path))
    if overrides:
        cfg = update(cfg, parse_overrides(overrides))
    return cfg


def to_dict(cfg) -> dict[str, Any]:
    """A JSON/YAML-ready nested dict of a dataclass config."""
    return dataclasses.asdict(cfg)


def from_dict(cls, data: Mapping[str, Any]):
    """Rebuild config ``cls`` from :func:`to_dict` output, checking every key."""
    return update(cls(), data)
