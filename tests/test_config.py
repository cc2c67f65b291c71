"""The configuration: round trip, validation, docstrings, and the command line made from it."""
import dataclasses
import json
from pathlib import Path

import pytest

from bids_amyloid.bids.dataset import write_run_config
from bids_amyloid.cli import build_parser, config_from_args
from bids_amyloid.config import Config, config_from_dict, field_docs, load_config_file, settings
from bids_amyloid.config.options import dest, flags
from bids_amyloid.errors import UsageError


def test_round_trip_keeps_types(tmp_path):
    config = Config(bids_dir=Path("/data"), output_dir=Path("/out"), analysis_level="group", seed=7,
                    participant_labels=["01"], bids_filter_file=Path("/f.json"))
    config.preprocess.slice_band = (0.3, 0.7)
    config.preprocess.suvr_window = {"PiB": (40.0, 60.0)}
    config.train.negatives = "hard"
    config.train.recipe.phase1.encoder_lr = 1e-5
    again = config_from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert isinstance(again.bids_filter_file, Path) and again.preprocess.slice_band == (0.3, 0.7)
    assert again.preprocess.suvr_window == {"PiB": (40.0, 60.0)} and again.train.recipe.phase1.encoder_lr == 1e-5


def test_unknown_and_missing_keys_load_as_defaults():
    """A configuration saved by another version: unknown keys ignored, new settings take their defaults."""
    old = {"bids_dir": "/d", "output_dir": "/o", "analysis_level": "group", "retired_setting": 1,
           "train": {"folds": 3, "PHASE0": {"lr": 1}}}
    config = config_from_dict(old)
    assert config.train.folds == 3 and config.train.batch_size == 6 and config.preprocess.realign_frames


def test_saved_with_version_and_seed(tmp_path):
    config = Config(bids_dir=Path("/data"), output_dir=Path("/out"), analysis_level="participant", seed=99)
    write_run_config(config, tmp_path / "c.json")
    payload = json.loads((tmp_path / "c.json").read_text())
    assert payload["bids_amyloid_version"] and payload["config"]["seed"] == 99


@pytest.mark.parametrize("change, code", [
    (dict(analysis_level="session"), 17), (dict(contrasts=["DWI"]), 64), (dict(nprocs=0), 64),
    (dict(mem_gb=-1), 64), (dict(device="tpu"), 64), (dict(participant_labels=["../x"]), 64),
])
def test_validate_rejects(change, code):
    config = Config(bids_dir=Path("/d"), output_dir=Path("/o"), analysis_level="participant")
    for key, value in change.items():
        setattr(config, key, value)
    with pytest.raises(UsageError) as info:
        config.validate()
    assert info.value.exit_code == code


@pytest.mark.parametrize("section, change, match", [
    ("train", dict(distill=True, phase0=False, triplet=False), "needs a trained teacher"),
    ("train", dict(phase2_epochs=0), "at least one phase-2 epoch"),
    ("train", dict(lr_scale=0), "--lr-scale"),
    ("infer", dict(saliency=("lime",)), "unknown saliency"),
    ("preprocess", dict(suvr_window={"PiB": (60.0, 40.0)}), "START < END"),
])
def test_section_validation_runs_once_in_config(section, change, match):
    config = Config(bids_dir=Path("/d"), output_dir=Path("/o"), analysis_level="group")
    for key, value in change.items():
        setattr(getattr(config, section), key, value)
    with pytest.raises(UsageError, match=match):
        config.validate()


def test_every_setting_documented():
    """Every field of every config dataclass (sections and recipe included) has its docstring."""
    undocumented = [".".join(s.path) for s in settings(Config) if not s.doc]
    assert not undocumented, undocumented
    assert field_docs(Config)["seed"].startswith("Master seed")


def test_parser_and_dataclasses_agree():
    """Every setting is an option of the parser, or deliberately hidden with a reason; names are unique."""
    parser = build_parser()
    by_dest = {a.dest: a for a in parser._actions}
    visible = [s for s in settings(Config) if not s.hidden]
    hidden = [s for s in settings(Config) if s.hidden]
    assert len({dest(s) for s in visible}) == len(visible), "option names must be unique over the tree"
    for s in visible:
        action = by_dest[dest(s)]
        assert set(flags(s)) == set(action.option_strings), s.path
        assert action.help and action.help.startswith(s.doc.rstrip(".").replace("%", "%%")[:30]), s.path
    assert {".".join(s.path) for s in hidden if not s.path[:2] == ("train", "recipe")} == {
        "bids_dir", "output_dir", "analysis_level", "verbose"}
    assert all(s.hidden for s in settings(Config) if s.path[:2] == ("train", "recipe"))


@pytest.mark.parametrize("argv, path, value", [
    (["--batch-size", "4"], ("train", "batch_size"), 4),
    (["--semi-hard"], ("train", "semi_hard"), True),
    (["--no-qc-figures"], ("preprocess", "qc_figures"), False),
    (["--negative-fallbacks", "9", "3"], ("train", "negative_fallbacks"), (9.0, 3.0)),
    (["--slice-band", "0.3", "0.7"], ("preprocess", "slice_band"), (0.3, 0.7)),
    (["--workers", "2"], ("train", "workers"), 2),
    (["--no-bf16"], ("train", "bf16"), False),
    (["--bootstrap", "50"], ("train", "bootstrap"), 50),
])
def test_settings_that_had_no_option_are_reachable(tmp_path, argv, path, value):
    config = config_from_args(build_parser().parse_args([str(tmp_path), str(tmp_path / "o"), "group", *argv]))
    obj = config
    for name in path:
        obj = getattr(obj, name)
    assert obj == value


def test_config_file_repeats_a_run_and_options_override_it(tmp_path):
    first = config_from_args(build_parser().parse_args(
        [str(tmp_path), str(tmp_path / "o"), "group", "--sloppy", "--folds", "3", "--lr-scale", "4"]))
    saved = tmp_path / "group_config.json"
    write_run_config(first, saved)
    again = config_from_args(build_parser().parse_args([str(tmp_path), str(tmp_path / "o"), "group", "--config",
                                                        str(saved)]))
    assert dataclasses.asdict(again) == dataclasses.asdict(first)
    changed = config_from_args(build_parser().parse_args([str(tmp_path), str(tmp_path / "o2"), "group", "--config",
                                                          str(saved), "--folds", "4"]))
    assert changed.train.folds == 4 and changed.train.lr_scale == 4 and changed.output_dir == tmp_path / "o2"
    assert changed.train.phase0_epochs == 2  # the saved --sloppy budget, not the defaults
    with pytest.raises(UsageError, match="not a bids_amyloid configuration"):
        (tmp_path / "bad.json").write_text("{}")
        load_config_file(tmp_path / "bad.json")
