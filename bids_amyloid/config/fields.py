"""The machinery of the configuration dataclasses: command-line metadata, docstrings, JSON.

A setting is a dataclass field with a one-line docstring (the string literal right below it) and,
where the default command-line form does not fit, :func:`cli` metadata. The command line is made
from these fields (``config.options``), so a new setting needs its field only.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import json
import textwrap
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def cli(*flags: str, hidden: str | None = None, metavar: str | None = None, parse: str | None = None,
        choices: tuple[str, ...] | None = None, negate: bool | None = None) -> dict[str, Any]:
    """Field metadata for the command line.

    ``flags``: the option strings (default ``--<field-name>``; a bool field that is True by
    default becomes ``--no-<name>``); ``hidden``: why the field is not on the command line (set
    it in a ``--config`` file); ``parse``: ``"module:function"`` turning the option's list of
    strings into the field's value; ``choices`` for list fields.
    """
    return {"cli": {"flags": flags, "hidden": hidden, "metavar": metavar, "parse": parse, "choices": choices,
                    "negate": negate}}


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstrings of a config dataclass, keyed by field name (used by --help)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = str(nxt.value.value)  # type: ignore[union-attr]
    return docs


@dataclasses.dataclass(frozen=True)
class Setting:
    """One leaf field of the configuration tree."""

    path: tuple[str, ...]
    """Attribute path from the top-level Config, e.g. ('train', 'batch_size')."""
    owner: type
    """The dataclass that declares the field."""
    field: dataclasses.Field
    hint: Any
    doc: str

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def meta(self) -> dict[str, Any]:
        return self.field.metadata.get("cli", {})

    @property
    def hidden(self) -> str | None:
        """Why the setting is not a command-line option (None: it is one)."""
        return self.meta.get("hidden") or getattr(self.owner, "CLI_HIDDEN", None)

    @property
    def default(self) -> Any:
        if self.field.default is not dataclasses.MISSING:
            return self.field.default
        if self.field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            return self.field.default_factory()  # type: ignore[misc]
        return dataclasses.MISSING


def settings(cls: type, prefix: tuple[str, ...] = ()) -> Iterator[Setting]:
    """Every leaf setting of ``cls``, depth first (nested config dataclasses are walked)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from settings(hint, prefix + (f.name,))
        else:
            yield Setting(prefix + (f.name,), cls, f, hint, docs.get(f.name, ""))


def get(obj: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        obj = getattr(obj, name)
    return obj


def put(obj: Any, path: tuple[str, ...], value: Any) -> None:
    setattr(get(obj, path[:-1]), path[-1], value)


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _coerce(value: Any, hint: Any) -> Any:
    """A JSON value as the field's type: paths, tuples (also inside dicts), nested dataclasses."""
    if value is None:
        return None
    if dataclasses.is_dataclass(hint):
        return build(hint, value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0]) if len(inner) == 1 else value
    if hint is Path:
        return Path(value)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return {k: _coerce(v, args[1]) for k, v in value.items()}
    return value


def build(cls: type, data: dict[str, Any]) -> Any:
    """An instance of the config dataclass ``cls`` from its JSON form (unknown keys ignored, so a
    configuration saved by another version still loads; missing keys take the defaults)."""
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: _coerce(data[f.name], hints[f.name]) for f in dataclasses.fields(cls) if f.name in data}
    return cls(**kwargs)


def settings_fingerprint(payload: Any) -> str:
    """Short digest of JSON-able settings: what an output or a checkpoint was made with (one rule for
    the preprocessing sidecars and the training checkpoints)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
