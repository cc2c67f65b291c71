"""The CLI contract: guards, label spellings, exit codes (each guard names the path or value)."""
import os
import subprocess
import sys

import pytest

from bids_amyloid.cli import build_parser, config_from_args, main


def test_help_lists_exit_codes_without_heavy_imports():
    # fast because nothing heavy is imported (checked below), not timed: a timed test fails on a busy machine
    result = subprocess.run([sys.executable, "-m", "bids_amyloid", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "exit codes" in result.stdout and "--participant-label" in result.stdout
    heavy = subprocess.run([sys.executable, "-c", "import sys, bids_amyloid.cli; "
                            "print(sorted(m for m in ('torch','ants','bids.layout','nibabel','pandas') if m in sys.modules))"],
                           capture_output=True, text=True)
    assert heavy.stdout.strip() == "[]"


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and "bids_amyloid" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--participant-label", "--participant_label"])
def test_label_spellings_and_prefixes(flag, tmp_path):
    args = build_parser().parse_args([str(tmp_path), str(tmp_path / "o"), "participant", flag, "sub-01", "02",
                                      "--session-label", "ses-M000"])
    config = config_from_args(args)
    assert config.participant_labels == ["01", "02"] and config.session_labels == ["M000"]


def test_sloppy_selects_tiny_backbone(tmp_path):
    config = config_from_args(build_parser().parse_args([str(tmp_path), str(tmp_path / "o"), "group", "--sloppy"]))
    assert config.sloppy and config.model.backbone == "tiny" and config.train.lr_scale == 10.0
    chosen = config_from_args(build_parser().parse_args([str(tmp_path), str(tmp_path / "o"), "group", "--sloppy",
                                                         "--lr-scale", "2"]))
    assert chosen.train.lr_scale == 2.0


def test_training_and_inference_knobs_reach_the_config(tmp_path):
    argv = [str(tmp_path), str(tmp_path / "o"), "group", "--lr-scale", "10", "--monitor", "auc", "--no-augment",
            "--input-slices", "12", "--student", "small", "--saliency", "gradcam", "--no-native-saliency",
            "--cpu-precision", "float32", "--saliency-gradient", "ensemble"]
    config = config_from_args(build_parser().parse_args(argv))
    assert (config.train.lr_scale, config.train.monitor, config.train.augment) == (10.0, "auc", False)
    assert (config.model.input_slices, config.model.student) == (12, "small")
    assert config.infer.saliency == ("gradcam",) and not config.infer.native_saliency
    assert (config.infer.cpu_precision, config.infer.saliency_gradient) == ("float32", "ensemble")
    defaults = config_from_args(build_parser().parse_args(argv[:3]))
    assert defaults.train.lr_scale == 1.0 and defaults.train.augment and defaults.infer.saliency == ("gradcam", "gradient")
    assert (defaults.infer.cpu_precision, defaults.infer.saliency_gradient) == ("auto", "folds")
    none = config_from_args(build_parser().parse_args(argv[:3] + ["--saliency", "none"]))
    assert none.infer.saliency == ()


def test_calibration_zone_and_subgroup_options(tmp_path):
    argv = [str(tmp_path), str(tmp_path / "o"), "group", "--calibration", "isotonic", "--rule-out-sensitivity",
            "0.95", "--rule-in-specificity", "0.8", "--subgroup-column", "site", "diagnosis", "--cv-group-column",
            "site"]
    t = config_from_args(build_parser().parse_args(argv)).train
    assert (t.calibration, t.rule_out_sensitivity, t.rule_in_specificity) == ("isotonic", 0.95, 0.8)
    assert t.subgroup_columns == ("site", "diagnosis") and t.cv_group_column == "site"
    d = config_from_args(build_parser().parse_args(argv[:3])).train
    assert (d.calibration, d.rule_out_sensitivity, d.rule_in_specificity) == ("auto", 0.9, 0.9)
    assert d.subgroup_columns == () and d.cv_group_column is None


@pytest.mark.parametrize("flags", [["--lr-scale", "0"], ["--input-slices", "0"], ["--input-slices", "41"],
                                   ["--rule-out-sensitivity", "0"], ["--rule-in-specificity", "1.5"]])
def test_bad_training_knobs_are_usage_errors(tmp_path, flags, capsys):
    assert main([str(tmp_path), str(tmp_path / "o"), "group", *flags]) == 64
    assert flags[0] in capsys.readouterr().err


def _run(tmp_path, *args):
    return main([str(a) for a in args])


def test_unknown_level(tiny_bids, tmp_path, capsys):
    assert _run(tmp_path, tiny_bids, tmp_path / "out", "session") == 17
    assert "session" in capsys.readouterr().err


def test_usage_error_is_64(tmp_path):
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path), str(tmp_path), "participant", "--nprocs", "x"])
    assert info.value.code == 64


def test_output_equal_or_inside_bids(tiny_bids, tmp_path, capsys):
    assert _run(tmp_path, tiny_bids, tiny_bids, "participant") == 64
    assert _run(tmp_path, tiny_bids, tiny_bids / "derivatives" / "x", "participant") == 64
    assert _run(tmp_path, tiny_bids, tmp_path / "o", "participant", "-w", tiny_bids / "work") == 64
    assert str(tiny_bids) in capsys.readouterr().err
    assert not (tiny_bids / "derivatives").exists() and not (tiny_bids / "work").exists()


def test_unwritable_output(tiny_bids, tmp_path, capsys):
    if os.geteuid() == 0:  # root writes anywhere on disk; /proc refuses even root
        target = "/proc/bids_amyloid_out"
    else:
        (tmp_path / "locked").mkdir(mode=0o500)
        target = tmp_path / "locked" / "out"
    assert _run(tmp_path, tiny_bids, target, "participant", "-w", tmp_path / "w") == 73
    assert "bids_amyloid_out" in capsys.readouterr().err or "locked" in str(target)


def test_output_under_a_file_is_73(tiny_bids, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _run(tmp_path, tiny_bids, blocker / "out", "participant") == 73
    assert "file" in capsys.readouterr().err


def test_missing_dataset_and_not_bids(tmp_path, capsys):
    assert _run(tmp_path, tmp_path / "missing", tmp_path / "o", "participant") == 64
    (tmp_path / "plain").mkdir()
    assert _run(tmp_path, tmp_path / "plain", tmp_path / "o", "participant") == 16
    assert "dataset_description.json" in capsys.readouterr().err


def test_labels_matching_nothing(tiny_bids, tmp_path, capsys):
    code = _run(tmp_path, tiny_bids, tmp_path / "o", "participant", "--participant-label", "77",
                "--skip-bids-validation")
    assert code == 18 and "77" in capsys.readouterr().err


def test_traversal_label_rejected(tiny_bids, tmp_path):
    assert _run(tmp_path, tiny_bids, tmp_path / "o", "participant", "--participant-label", "../x") == 64


def test_bad_filter_file(tiny_bids, tmp_path, capsys):
    bad = tmp_path / "f.json"
    bad.write_text("{oops")
    assert _run(tmp_path, tiny_bids, tmp_path / "o", "participant", "--bids-filter-file", bad,
                "--skip-bids-validation") == 64
    assert "f.json" in capsys.readouterr().err


def test_invalid_bids_fails_validation(tiny_bids, tmp_path, capsys):
    pytest.importorskip("bids_validator_deno", reason="bids-validator-deno not installed")
    (tiny_bids / "sub-01" / "ses-M000" / "anat" / "junk_T1w.nii.gz").write_bytes(b"x")
    assert _run(tmp_path, tiny_bids, tmp_path / "o", "participant") == 16
    assert "BIDS validation" in capsys.readouterr().err
