"""Typed configs from YAML: frozen dataclasses are the API, files and dotted overrides fill them.

`load_dataclass(cls, path, overrides)` reads a YAML file (every key optional; an unknown key is an error naming
the keys allowed there; a mapping value replaces the default mapping), lays it over the defaults of `cls`,
applies `key=value` overrides such as `search.depth=8` or `scale.budgets=[1e12,3e12]` (values parsed as YAML,
so numbers, lists and `null` work; a dotted key into a mapping field changes one key of it) and converts
everything by the dataclasses' type hints. Shared by the compose and design configs.

The type hints are the one place where allowed values live: a `Literal["a", "b"]` field (or a
`tuple[Literal[...], ...]` list of choices) accepts only those values, and every error is one line naming the
full key, e.g. "scale.flops: must be one of xla, analytic, 6n; got 'foo'". `check_types(config)` makes the same
checks on a config built in Python, and `choices_help(cls)` lists every key with fixed choices (the CLIs'
--help). An `Overrides` dataclass is a typed sub-config of optional overrides of another config (e.g.
`evaluator.model` over a model preset): None means "not overridden", and it reads as the mapping of the fields
that are set.
"""

from __future__ import annotations

import dataclasses
import pathlib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import yaml


class ConfigError(ValueError):
  """A configuration the run cannot use; the message names the key and what is allowed."""


class Overrides(Mapping):
  """Base of a dataclass whose fields, all defaulting to None, override another config's: None means "not
  overridden" (so a null cannot be set through it). Declare it `@dataclasses.dataclass(frozen=True, eq=False,
  repr=False)` so that equality, hashing and repr come from here. It reads as the mapping of the fields that
  are set (`dict(o)`, `f(**o)`, `o == {"d_model": 32}`), is written out as that mapping, and in a YAML file a
  value for it replaces the default as a whole (a dotted override changes one key)."""

  def __getitem__(self, key: str) -> Any:
    value = getattr(self, key) if key in self._names() else None
    if value is None:
      raise KeyError(key)
    return value

  def __iter__(self):
    return (name for name in self._names() if getattr(self, name) is not None)

  def __len__(self) -> int:
    return sum(1 for _ in self)

  def __hash__(self) -> int:
    return hash(tuple(self.items()))

  def __repr__(self) -> str:
    return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.items())})"

  def _names(self) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(self))


def to_plain(value: Any) -> Any:
  """Dataclasses, mappings and sequences as plain dicts and lists (YAML- and JSON-ready)."""
  if isinstance(value, Mapping):  # before dataclasses: an Overrides is written as the fields it sets
    return {str(k): to_plain(v) for k, v in value.items()}
  if dataclasses.is_dataclass(value):
    return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
  if isinstance(value, (tuple, list)):
    return [to_plain(v) for v in value]
  return value


def _convert(value: Any, hint: Any, where: str) -> Any:
  """`value` (from YAML) converted to the type `hint`, or ConfigError naming `where`."""
  origin = typing.get_origin(hint)
  if origin is typing.Literal:
    allowed = typing.get_args(hint)
    if not any(type(value) is type(a) and value == a for a in allowed):  # the type too: True is not 1
      raise ConfigError(f"{where}: must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value
  if origin in (typing.Union, types.UnionType):
    options = typing.get_args(hint)
    if value is None and type(None) in options:
      return None
    errors = []
    for option in options:
      if option is type(None):
        continue
      try:
        return _convert(value, option, where)
      except ConfigError as e:
        errors.append(str(e))
    raise ConfigError(errors[0] if errors else f"{where}: cannot be {value!r}")
  if dataclasses.is_dataclass(hint):
    if isinstance(value, hint):
      return value
    if isinstance(value, str) and hasattr(hint, "from_text"):  # a shorthand, e.g. an agent given by name
      value = to_plain(hint.from_text(value))  # then checked like the mapping it stands for
    if not isinstance(value, Mapping):
      raise ConfigError(f"{where}: expected a mapping of {hint.__name__} fields, got {value!r}")
    return from_mapping(hint, value, where)
  if origin is tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
      value = [value]
    (item_hint, *_) = typing.get_args(hint)
    return tuple(_convert(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value))
  if origin in (Mapping, dict) or hint in (Mapping, dict):
    if not isinstance(value, Mapping):
      raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return dict(value)
  if hint is float:
    if isinstance(value, bool):
      raise ConfigError(f"{where}: expected a number, got {value!r}")
    if not isinstance(value, (int, float)):
      try:
        return float(value)  # YAML reads "1e12" (no dot) as a string
      except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    return float(value)
  if hint is int:
    if isinstance(value, float) and value.is_integer():
      value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
      raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return value
  if hint is bool:
    if not isinstance(value, bool):
      raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value
  if hint is str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
      raise ConfigError(f"{where}: expected text, got {value!r}")
    return str(value)
  return value


def from_mapping(cls, values: Mapping[str, Any], where: str = ""):
  """An instance of the dataclass `cls` from plain values, converted by its type hints; ConfigError naming
  the key for an unknown key or a value of the wrong type."""
  hints = typing.get_type_hints(cls)
  names = [f.name for f in dataclasses.fields(cls)]
  unknown = sorted(map(str, set(values) - set(names)))
  if unknown:
    raise ConfigError(f"{where or 'config'}: unknown key(s) {', '.join(map(str, unknown))}; allowed: "
                      f"{', '.join(names)}")
  kwargs = {k: _convert(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}
  try:
    return cls(**kwargs)
  except (TypeError, ValueError) as e:  # a dataclass's own checks (__post_init__) included
    raise ConfigError(f"{where or 'config'}: {e}") from None


def check_types(config) -> None:
  """The checks of `load_dataclass` (types, Literal choices, unknown keys) on a dataclass built in Python;
  ConfigError naming the key."""
  from_mapping(type(config), to_plain(config))


def _strip_optional(hint: Any) -> Any:
  """`X` of `X | None` (any other hint unchanged)."""
  if typing.get_origin(hint) in (typing.Union, types.UnionType):
    options = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(options) == 1:
      return options[0]
  return hint


def choices(cls, prefix: str = "") -> dict[str, tuple[Any, ...]]:
  """{dotted key: allowed values} of every Literal-typed setting of the dataclass `cls` and its sections, in
  field order; a list of sections shows as "key[].field" (e.g. "search.agents[].policy")."""
  found: dict[str, tuple[Any, ...]] = {}
  for name, hint in typing.get_type_hints(cls).items():
    key = f"{prefix}{name}"
    hint = _strip_optional(hint)
    if typing.get_origin(hint) is tuple:
      hint, key = typing.get_args(hint)[0], f"{key}[]"
    if typing.get_origin(hint) is typing.Literal:
      found[key] = typing.get_args(hint)
    elif dataclasses.is_dataclass(hint):
      found.update(choices(hint, f"{key}."))
  return found


def choices_help(cls, indent: str = "  ") -> str:
  """`choices(cls)` as lines for --help: "  scale.flops: xla | analytic | 6n" ([] marks a list: give any of
  them, e.g. scale.methods=[stretch,stack])."""
  return "\n".join(f"{indent}{key}: {' | '.join(map(str, allowed))}" for key, allowed in choices(cls).items())


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
  keys = dotted.split(".")
  node = tree
  for key in keys[:-1]:
    child = node.get(key)
    if not isinstance(child, dict):
      child = {}
      node[key] = child
    node = child
  node[keys[-1]] = value


def apply_overrides(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
  """`values` with each "a.b.c=value" applied (value parsed as YAML). ConfigError for a malformed one."""
  values = to_plain(values)
  for item in overrides:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
      raise ConfigError(f"override {item!r} must look like key=value, e.g. search.depth=8")
    try:
      parsed = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as e:
      raise ConfigError(f"override {item!r}: the value is not valid YAML ({e})") from None
    _set_dotted(values, key.strip(), parsed)
  return values


def with_defaults(cls, values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
  """`defaults` with `values` laid over: sections (dataclass fields) merge key by key, any other value (a
  mapping or an `Overrides` like `evaluator.model` included) replaces the default. Unknown keys pass through to
  be reported."""
  hints = typing.get_type_hints(cls)
  merged = dict(defaults)
  for key, value in values.items():
    hint = hints.get(key)
    section = dataclasses.is_dataclass(hint) and not issubclass(hint, Overrides)
    if section and isinstance(value, Mapping) and isinstance(defaults.get(key), Mapping):
      merged[key] = with_defaults(hint, value, defaults[key])
    else:
      merged[key] = value
  return merged


def read_yaml(path: str | pathlib.Path) -> dict[str, Any]:
  """The mapping in a YAML file; ConfigError when missing, invalid or not a mapping."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise ConfigError(f"config file {path} does not exist")
  try:
    loaded = yaml.safe_load(path.read_text())
  except yaml.YAMLError as e:
    raise ConfigError(f"{path} is not valid YAML: {e}") from None
  if loaded is not None and not isinstance(loaded, dict):
    raise ConfigError(f"{path} must hold a mapping at the top level, got {type(loaded).__name__}")
  return loaded or {}


def load_dataclass(cls, path: str | pathlib.Path | None = None, overrides: Sequence[str] = ()):
  """An instance of `cls` from the YAML file (None: defaults) with `overrides` applied (module docstring)."""
  values = read_yaml(path) if path is not None else {}
  merged = with_defaults(cls, values, to_plain(cls()))
  return from_mapping(cls, apply_overrides(merged, overrides))
