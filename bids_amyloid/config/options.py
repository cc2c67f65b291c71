"""The command-line options, made from the configuration dataclasses.

One option per setting (``config.fields.settings``) unless the setting is hidden: the flag is
``--<field-name>`` (or the field's ``cli(...)`` flags), help is the field's docstring, choices
come from ``Literal`` types, a bool that is True by default becomes ``--no-<name>``, tuples and
lists take several values. :func:`apply_options` writes the options GIVEN on the command line
onto a Config (so they override a ``--config`` file) and returns which ones were given.
"""
from __future__ import annotations

import argparse
import importlib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from bids_amyloid.config.fields import Setting, put, settings

GROUPS = {"labels": "labels", "preprocess": "preprocessing", "model": "model", "train": "group-level training",
          "infer": "participant-level prediction"}
TOP_GROUPS = {"resources": ("work_dir", "nprocs", "omp_nthreads", "mem_gb", "device", "seed", "sloppy", "overwrite"),
              "model": ("model_path",)}
"""Top-level settings outside 'selection' (the group of the rest)."""


def _inner(hint: Any) -> Any:
    """``X | None`` -> X."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def dest(setting: Setting) -> str:
    """The argparse destination (and Boutiques id): the field name, unique over the tree."""
    return setting.name


def flags(setting: Setting) -> tuple[str, ...]:
    given = setting.meta.get("flags") or ()
    if given:
        return tuple(given)
    name = setting.name.replace("_", "-")
    negate = _inner(setting.hint) is bool and setting.default is True
    return (f"--no-{name}" if negate else f"--{name}",)


def _kwargs(setting: Setting) -> dict[str, Any]:
    hint, meta, default = _inner(setting.hint), setting.meta, setting.default
    doc = setting.doc.rstrip(".").replace("%", "%%")  # argparse formats help with %
    kw: dict[str, Any] = {"dest": dest(setting), "metavar": meta.get("metavar")}
    if hint is bool:
        kw["action"] = "store_false" if default is True else "store_true"
        kw.pop("metavar")
        kw["help"] = doc
        return kw
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if meta.get("parse"):
        kw["nargs"] = "+"
    elif origin is tuple:
        kw["nargs"] = "+" if len(args) == 2 and args[1] is Ellipsis else len(args)
        kw["type"] = args[0]
    elif origin is list:
        kw["nargs"] = "+"
    elif typing.get_origin(hint) is Literal:
        kw["choices"] = typing.get_args(hint)
    elif hint in (int, float, Path):
        kw["type"] = hint
    choices = meta.get("choices")
    if choices:
        kw["choices"] = choices
    shown = default if not isinstance(default, (list, tuple, dict)) else " ".join(map(str, default)) or None
    kw["help"] = doc + (f" (default: {shown})".replace("%", "%%") if shown not in (None, "") else "")
    return kw


def add_options(parser: argparse.ArgumentParser, config_cls: type) -> list[Setting]:
    """Add one option per visible setting of ``config_cls``, in argument groups; return them."""
    groups: dict[str, Any] = {}
    added = []
    for setting in settings(config_cls):
        if setting.hidden:
            continue
        title = GROUPS.get(setting.path[0]) if len(setting.path) > 1 else next(
            (g for g, names in TOP_GROUPS.items() if setting.name in names), "selection")
        group = groups.setdefault(title, parser.add_argument_group(title))
        group.add_argument(*flags(setting), default=argparse.SUPPRESS, **_kwargs(setting))
        added.append(setting)
    return added


def _parser_of(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def apply_options(config: Any, namespace: argparse.Namespace, added: list[Setting]) -> set[tuple[str, ...]]:
    """Write every option present in ``namespace`` onto ``config``; return their setting paths."""
    given = set()
    for setting in added:
        if not hasattr(namespace, dest(setting)):
            continue  # not on the command line (defaults are suppressed): keep the config's value
        value = getattr(namespace, dest(setting))
        parse = setting.meta.get("parse")
        if parse:
            value = _parser_of(parse)(value)
        elif typing.get_origin(_inner(setting.hint)) is tuple:
            value = tuple(value)
        put(config, setting.path, value)
        given.add(setting.path)
    return given


def parse_saliency(values: list[str]) -> tuple[str, ...]:
    """``--saliency gradcam gradient`` / ``--saliency none``: the methods, 'none' dropped."""
    return tuple(m for m in dict.fromkeys(values) if m != "none")
