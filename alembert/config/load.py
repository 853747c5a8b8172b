"""Read a config from YAML, apply command-line overrides, validate.

Overrides are dotted paths (``train.lr``) so flags and ``--set key=value`` reach
any field. Every failure is one :class:`AlembertError` naming the field path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from alembert.errors import AlembertError

C = TypeVar("C", bound=BaseModel)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise AlembertError(f"config file {path} not found; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise AlembertError(
            f"config file {path}{where}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax"
        ) from None
    except UnicodeDecodeError:
        raise AlembertError(f"config file {path}: not UTF-8 text; save it as UTF-8") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AlembertError(f"config file {path}: top level must be a mapping of fields, got {type(data).__name__}")
    return data


def set_dotted(tree: dict[str, Any], dotted: str, value: Any, sections: dict[str, Any] | None = None) -> None:
    """Set ``tree['a']['b'] = value`` for ``dotted == 'a.b'``, creating sections.

    A numeric part indexes a list (``recipe.stages.0.losses.1.weight``). ``sections`` maps a
    top-level field whose value may be a *name* (``recipe: kd``) to a function returning the
    named thing as a tree, so that a path into it resolves the name first."""
    *parents, leaf = dotted.split(".")
    node: Any = tree
    for depth, key in enumerate(parents):
        if depth == 0 and sections and key in sections and isinstance(node.get(key), str | type(None)):
            node[key] = sections[key](node.get(key))
        node = _child(node, key, dotted)
    if isinstance(node, list):
        node[_index(node, leaf, dotted)] = value
    else:
        node[leaf] = value


def _child(node: Any, key: str, dotted: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, key, dotted)]
    child = node.setdefault(key, {})
    if not isinstance(child, dict | list):
        raise AlembertError(f"config field '{key}' is a value, not a section; cannot set '{dotted}'")
    return child


def _index(node: list, key: str, dotted: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise AlembertError(
            f"--set {dotted}: '{key}' is not an index of a list of {len(node)} items; use 0..{len(node) - 1}"
        )
    return int(key)


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``["train.lr=3e-5", "data.task=mrpc"]`` -> dotted overrides (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise AlembertError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set train.lr=3e-5")
        key, raw = item.split("=", 1)
        out[key.strip()] = _scalar(raw, item)
    return out


def _scalar(raw: str, item: str = "") -> Any:
    """A YAML value; also reads '3e-5' as a float (YAML 1.1 wants '3.0e-5'). Parsed with
    ``safe_load``: a ``!!python/...`` tag is refused, never constructed."""
    if not raw.strip():
        return None
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise AlembertError(
            f"--set {item or raw!r}: the value is not valid YAML ({problem}); quote it "
            "(--set 'field=\"text\"') or fix the syntax, e.g. --set data.task=sst2"
        ) from None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def build_config(
    cls: type[C],
    yaml_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    sections: dict[str, Any] | None = None,
) -> C:
    """YAML fields, then overrides (dotted path -> value, None means 'not given'), then validation.
    ``sections``: see :func:`set_dotted` (a named recipe resolved before a path into it)."""
    tree = read_yaml(yaml_path) if yaml_path else {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(tree, dotted, value, sections)
    try:
        return cls.model_validate(tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        source = f"config {yaml_path}: " if yaml_path else "config: "
        if err["type"] == "extra_forbidden":
            known = _known_fields(cls, err["loc"][:-1])
            raise AlembertError(f"{source}unknown field '{field}'; valid fields here: {', '.join(known)}") from None
        value = err.get("input")
        shown = f" (got {value!r})" if not isinstance(value, dict) else ""
        raise AlembertError(f"{source}field '{field}': {err['msg']}{shown}") from None


def _known_fields(cls: type[BaseModel], loc: tuple) -> list[str]:
    model: Any = cls
    for key in loc:
        field = model.model_fields.get(key) if hasattr(model, "model_fields") else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return sorted(model.model_fields)


def dump_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
