"""Job configuration: one path for every job, dataclass defaults → YAML file → flags.

Every job's settings are a tree of dataclasses with their defaults in code. A ``--config`` YAML
file and then the command-line flags override them, both through :func:`apply_overrides`, so a
flag is checked exactly as the same key in a YAML file is:

- unknown keys are refused (a typo never passes silently);
- every value is checked against the field's type (an ``int`` field refuses ``"eight"``;
  flags arrive as text and are parsed into the field's type);
- every config dataclass validates its own values when built (``__post_init__``, with
  :func:`require`), so no job ever starts with a bad value.

Problems are one-line :class:`~samic_vos.runtime.errors.UserError` messages naming where the value
came from (the file or the flag), the full key (``tracker.batch_size``) and what is allowed. Every
run writes what actually ran with :func:`save_config`.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from samic_vos.runtime.atomic import atomic_write_text
from samic_vos.runtime.errors import UserError

T = TypeVar("T")


class ConfigError(UserError):
    """A config value that is not allowed: ``key`` (dotted, from the job's root) and why."""

    def __init__(self, key: str, allowed: str, value: Any) -> None:
        self.key, self.allowed, self.value = key, allowed, value
        super().__init__(f"{key} must be {allowed}, got {value!r}")

    def under(self, prefix: str) -> ConfigError:
        """The same error with ``prefix`` (a section name) in front of its key."""
        return ConfigError(f"{prefix}.{self.key}", self.allowed, self.value)


def require(ok: bool, key: str, allowed: str, value: Any) -> None:
    """Raise :class:`ConfigError` for field ``key`` unless ``ok`` (use in ``__post_init__``)."""
    if not ok:
        raise ConfigError(key, allowed, value)


def require_choice(key: str, value: Any, choices: typing.Iterable[Any]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    require(value in choices, key, "one of " + ", ".join(map(str, choices)), value)


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


def manifest_config(config: Any, job: str | None = None) -> dict[str, Any]:
    """:func:`config_to_dict` of ``config`` without the device (of section ``job``, or at the
    top): what a run's manifest compares, the same for every shard whatever GPU it runs on."""
    plain = config_to_dict(config)
    (plain if job is None else plain[job]).pop("device")
    return plain


def _describe(hint: Any) -> str:
    """What a type hint allows, in words (for messages)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} {_describe(args[0])} values"
        return f"a list of {_describe(args[0]) if args else 'values'}"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a text"}
    if hint is type(None):
        return "null"
    if hint in (Path, os.PathLike):
        return "a path"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, hint: Any, from_text: bool) -> Any:
    """``value`` as the type ``hint`` describes, or :class:`_Mismatch`.

    ``from_text``: the value came from a command-line flag, as text; numbers and booleans are
    parsed from it. From YAML, only lossless conversions are made (an integer where a number
    is asked for, a list where a tuple is, an integer where a text is: ``year: 2016``).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, from_text)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        for choice in args:
            if value == choice or (from_text and str(choice) == value):
                return choice
        raise _Mismatch
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _Mismatch
            items = [_coerce(v, a, from_text) for v, a in zip(value, args, strict=True)]
        else:
            item = args[0] if args else Any
            items = [_coerce(v, item, from_text) for v in value]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _Mismatch
    if hint in (int, float):
        if isinstance(value, bool):
            raise _Mismatch
        if from_text and isinstance(value, str):
            try:
                return hint(value)
            except ValueError:
                raise _Mismatch from None
        if isinstance(value, int) or (hint is float and isinstance(value, float)):
            return hint(value)
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise _Mismatch
    if hint in (Path, os.PathLike):
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        raise _Mismatch
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    raise _Mismatch


def _apply(config: T, overrides: dict[str, Any], from_text: bool) -> T:
    """``config`` with ``overrides`` applied; raises :class:`ConfigError` (keys from here)."""
    hints = typing.get_type_hints(type(config))
    fields = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(str(key), "a known key (" + ", ".join(sorted(fields)) + ")", key)
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(key, "a mapping of its own keys", value)
            try:
                changes[key] = _apply(current, value, from_text)
            except ConfigError as err:
                raise err.under(key) from None
            continue
        try:
            changes[key] = _coerce(value, hints[key], from_text)
        except _Mismatch:
            raise ConfigError(key, _describe(hints[key]), value) from None
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def apply_overrides(
    config: T, overrides: dict[str, Any], source: str = "config", *, from_text: bool = False
) -> T:
    """A copy of dataclass ``config`` with ``overrides`` (nested dicts of keys) applied.

    Args:
        config: the job's config (a dataclass, possibly of dataclasses).
        overrides: ``{key: value or {subkey: ...}}``.
        source: where the values came from, first in every message (a file, a flag).
        from_text: values are command-line text, parsed into each field's type.

    Raises:
        UserError: ``"<source>: <full.key> must be <allowed>, got <value>"``.
    """
    try:
        return _apply(config, overrides, from_text)
    except ConfigError as err:
        raise UserError(f"{source}: {err}") from None


def read_yaml_overrides(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in the YAML file at ``path``; one-line :class:`UserError` if it is not one."""
    import yaml  # here: a command given no YAML file never pays for it

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; a config file is YAML text") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read the config file ({err.strerror})") from None
    try:
        overrides = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise UserError(f"{path}: not valid YAML{where}: {problem}") from None
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise UserError(f"{path}: a config file must be a YAML mapping of keys to values")
    return overrides


def load_config(default: T, path: str | os.PathLike[str] | None) -> T:
    """``default`` overridden by the YAML file at ``path`` (``None``: ``default`` itself)."""
    if path is None:
        return default
    return apply_overrides(default, read_yaml_overrides(path), str(path))


def save_config(config: Any, path: str | os.PathLike[str], **extra: Any) -> None:
    """Write the resolved ``config`` (plus ``extra`` top-level entries) as YAML, atomically."""
    import yaml

    data = config_to_dict(config)
    data.update(extra)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
