#!/usr/bin/env python3
"""Write the Boutiques descriptor (schema 0.5) and docs/options.md from the CLI parser.

    python .ci/make_boutiques.py           # rewrite bids_amyloid/data/boutiques.json, boutiques.json, docs/options.md
    python .ci/make_boutiques.py --check   # exit 1 if any of them is out of date

Inputs are derived from ``bids_amyloid.cli.build_parser()`` (one input per option, aliases named
in the description), so the descriptor cannot drift from the CLI; the metadata below (outputs,
resources, tests) is the only hand-written part. ``bids_amyloid/data/boutiques.json`` is the
packaged copy (``bids_amyloid --bids-exec-spec``); the top-level ``boutiques.json`` is identical.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bids_amyloid import __version__  # noqa: E402
from bids_amyloid.cli import ExecSpecAction, build_parser  # noqa: E402
from bids_amyloid.errors import EXIT_CODES  # noqa: E402

TARGETS = (REPO / "bids_amyloid" / "data" / "boutiques.json", REPO / "boutiques.json")
OPTIONS_PAGE = REPO / "docs" / "options.md"

# Path options that name something that must already exist (Boutiques "File"); other paths
# (the output and work folders, created by the app) are "String".
EXISTING_PATHS = {"bids_dir", "bids_filter_file", "model_path", "backbone_weights", "labels_file", "config"}
NAMES = {
    "bids_dir": "BIDS dataset",
    "output_dir": "output folder",
    "analysis_level": "analysis level",
    "verbose": "verbose",
}
DESCRIPTION = (
    "BIDS-App that predicts amyloid-beta positivity from structural MRI alone. The 'participant' level "
    "preprocesses T1w MRI (and amyloid PET when present: SUVR, Centiloid estimate) into the "
    "MNI152NLin2009aSym template and, with --model, predicts amyloid status with an MRI-only student "
    "model; the 'group' level trains a PET+MRI teacher and distils it into the MRI-only student with "
    "subject-level cross-validation. Model weights (BiomedCLIP vision tower) are baked into the image or "
    "fetched once with 'bids_amyloid fetch-weights DIR' and passed with --backbone-weights. "
    "'bids_amyloid --version' prints the version; 'bids_amyloid --bids-exec-spec' prints this descriptor."
)


def _help(action: argparse.Action, with_aliases: bool = True) -> str:
    text = (action.help or "").strip()
    if "%(default)" in text:
        text = text % {"default": action.default}
    if not with_aliases:
        return text
    aliases = [s for s in action.option_strings if s != _flag(action)]
    if aliases:
        text += f" (alias: {', '.join(aliases)})"
    return text


def _flag(action: argparse.Action) -> str:
    longs = [s for s in action.option_strings if s.startswith("--")]
    if action.dest == "verbose":
        return "-v"
    return longs[0] if longs else action.option_strings[0]


def _input(action: argparse.Action, defaults: dict) -> dict:
    dest = action.dest
    item: dict = {
        "id": dest,
        "name": NAMES.get(dest, dest.replace("_", " ")),
        "description": _help(action),
        "value-key": f"[{dest.upper()}]",
        "optional": not (not action.option_strings and action.required),
    }
    if action.option_strings:
        item["command-line-flag"] = _flag(action)
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._CountAction)):
        item["type"] = "Flag"
        if isinstance(action, argparse._CountAction):
            item["description"] += " (repeat the flag on the command line for more detail)"
        return item
    if action.type is int:
        item.update(type="Number", integer=True)
    elif action.type is float:
        item["type"] = "Number"
    elif action.type is Path:
        item["type"] = "File" if dest in EXISTING_PATHS else "String"
    else:
        item["type"] = "String"
    if action.nargs in ("+", "*"):
        item["list"] = True
        if action.nargs == "+":
            item["min-list-entries"] = 1
    elif isinstance(action.nargs, int) and action.nargs > 1:  # a fixed-length tuple (START END, LOW HIGH)
        item.update({"list": True, "min-list-entries": action.nargs, "max-list-entries": action.nargs})
    choices = list(action.choices) if action.choices else None
    if dest == "analysis_level":  # parsed as a string so the app can exit 17 on an unknown level
        choices = ["participant", "group"]
    if choices:
        item["value-choices"] = choices
    default = defaults.get(dest, action.default)  # settings' options have suppressed argparse defaults
    if isinstance(default, (tuple, dict)):
        default = list(default) if isinstance(default, tuple) else None
    if default not in (None, [], "", False, argparse.SUPPRESS) and not isinstance(default, Path):
        item["default-value"] = default
    return item


def descriptor() -> dict:
    from bids_amyloid.config.options import dest

    parser = build_parser()
    defaults = {dest(s): s.default for s in parser.get_default("settings")}
    actions = [a for a in parser._actions
               if not isinstance(a, (argparse._HelpAction, argparse._VersionAction, ExecSpecAction))]
    inputs = [_input(a, defaults) for a in actions]
    groups = []
    for group in parser._action_groups:
        members = [a.dest for a in group._group_actions if a in actions]
        if members and group.title not in ("positional arguments", "options", "optional arguments"):
            groups.append({"id": group.title.replace("-", "_").replace(" ", "_") + "_options", "name": group.title,
                           "members": members})
    command_line = "bids_amyloid " + " ".join(i["value-key"] for i in inputs)
    return {
        "name": "bids_amyloid",
        "tool-version": __version__,
        "schema-version": "0.5",
        "description": DESCRIPTION,
        "author": "bids_amyloid developers",
        "url": "https://github.com/bids-amyloid/bids_amyloid",
        "command-line": command_line,
        "container-image": {"type": "docker", "image": f"bids_amyloid:{__version__}"},
        "inputs": inputs,
        "groups": groups,
        "output-files": [
            {"id": "dataset_description", "name": "derivatives dataset description",
             "description": "BIDS derivative dataset_description.json (GeneratedBy with version and container)",
             "path-template": "[OUTPUT_DIR]/dataset_description.json", "optional": False},
            {"id": "subject_derivatives", "name": "per-subject derivatives",
             "description": "sub-<label>[/ses-<label>]/{anat,pet}/: brain masks, template-space images, "
                            "transforms, slice tensors, SUVR/Centiloid tables, predictions and saliency "
                            "maps (participant level)",
             "path-template": "[OUTPUT_DIR]/sub-*", "list": True, "optional": True},
            {"id": "models", "name": "trained model bundle",
             "description": "models/: the group level's MRI-only student bundle (manifest with checksums), "
                            "usable with --model at the participant level",
             "path-template": "[OUTPUT_DIR]/models", "optional": True},
            {"id": "group_results", "name": "group-level results",
             "description": "group/: cross-validation splits, metrics and summaries of the group level",
             "path-template": "[OUTPUT_DIR]/group", "optional": True},
            {"id": "figures", "name": "report figures",
             "description": "figures/ and HTML reports",
             "path-template": "[OUTPUT_DIR]/figures", "optional": True},
            {"id": "logs", "name": "logs and run configurations",
             "description": "logs/: the configuration of every run; per participant run the scans table (every "
                            "scan: used, skipped with the reason, or failed) and the MRI-PET pairing table",
             "path-template": "[OUTPUT_DIR]/logs", "optional": True},
        ],
        "suggested-resources": {"cpu-cores": 4, "ram": 16, "walltime-estimate": 7200, "nodes": 1},
        "error-codes": [{"code": code, "description": text} for code, text in EXIT_CODES.items() if code != 0],
        "tags": {"domain": ["neuroinformatics", "mri", "pet", "amyloid", "bids", "deep-learning"]},
        "tests": [
            {
                "name": "participant_sloppy",
                "invocation": {
                    "bids_dir": "data",
                    "output_dir": "out",
                    "analysis_level": "participant",
                    "participant_labels": ["001"],
                    "work_dir": "work",
                    "sloppy": True,
                    "skip_bids_validation": True,
                    "backbone_weights": "weights/tiny",
                },
                "assertions": {"exit-code": 0, "output-files": [{"id": "dataset_description"}]},
            }
        ],
    }


def render() -> str:
    return json.dumps(descriptor(), indent=2) + "\n"


def options_page() -> str:
    """Every option of ``bids_amyloid --help`` as Markdown tables, one per group (help texts name defaults)."""
    parser = build_parser()
    lines = ["# Command-line options", "",
             "Generated from the parser by `python .ci/make_boutiques.py` (the parser is generated from",
             "`bids_amyloid.config`); `bids_amyloid --help` prints the same. `--config FILE` starts from a",
             "saved run configuration (`OUTPUT_DIR/logs/*_config.json`); options given with it override it. The",
             "training recipe (`train.recipe`: learning rates, schedules, loss weights) has no options: set it",
             "in such a file.", ""]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.option_strings and a.help != argparse.SUPPRESS]
        if actions:
            title = "general" if group.title in ("options", "optional arguments") else group.title
            lines += [f"## {title}", "", "| option | meaning |", "|---|---|"]
            for a in actions:
                flags = ", ".join(f"`{f}`" for f in a.option_strings) + (f" `{a.metavar}`" if a.metavar else "")
                text = " ".join(_help(a, with_aliases=False).split()).replace("|", "\\|")
                lines.append(f"| {flags} | {text} |")
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = ap.parse_args(argv)
    texts = {**{p: render() for p in TARGETS}, OPTIONS_PAGE: options_page()}
    stale = [p for p, text in texts.items() if not p.is_file() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(REPO)} is out of date: run python .ci/make_boutiques.py", file=sys.stderr)
        return 1 if stale else 0
    for p, text in texts.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        print(f"wrote {p.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
