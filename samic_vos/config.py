"""Job configuration: dataclass defaults in code, YAML files only override them.

Every run writes its resolved configuration (defaults + overrides) next to its outputs with
:func:`save_config`, so a result can always be traced back to the settings that made it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml

from samic_vos.atomic import atomic_write_text
from samic_vos.errors import UserError

T = TypeVar("T")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain (YAML-serialisable) dict of a dataclass config; paths become strings."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        return value

    return plain(config)


def apply_overrides(config: T, overrides: dict[str, Any], where: str = "config") -> T:
    """A copy of dataclass ``config`` with ``overrides`` (nested dicts) applied.

    Unknown keys raise :class:`UserError` naming ``where`` and the key, so a typo in a YAML
    file never passes silently.
    """
    changes: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    for key, value in overrides.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise UserError(f"{where}: unknown key '{key}' (known keys: {known})")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise UserError(f"{where}: '{key}' must be a mapping")
            changes[key] = apply_overrides(current, value, f"{where}.{key}")
        else:
            changes[key] = tuple(value) if isinstance(current, tuple) else value
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def load_config(default: T, path: str | os.PathLike[str] | None) -> T:
    """``default`` overridden by the YAML file at ``path`` (``None``: ``default`` itself)."""
    if path is None:
        return default
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        overrides = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(overrides, dict):
        raise UserError(f"{path}: a config file must be a YAML mapping")
    return apply_overrides(default, overrides, str(path))


def save_config(config: Any, path: str | os.PathLike[str], **extra: Any) -> None:
    """Write the resolved ``config`` (plus ``extra`` top-level entries) as YAML, atomically."""
    data = config_to_dict(config)
    data.update(extra)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
