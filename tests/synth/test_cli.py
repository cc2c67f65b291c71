"""Console script: exit codes, refusal of non-empty folders, --overwrite, fallback anatomy."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from bids_amyloid.synth import anatomy, cli

FAST = ["--resolution", "2", "--n-subjects", "1", "--contrasts", "T1w"]


def test_cli_writes_and_refuses_non_empty(tmp_path, capsys):
    out = tmp_path / "ds"
    assert cli.main([str(out), *FAST]) == 0
    assert "oracle AUC" in capsys.readouterr().out
    assert cli.main([str(out), *FAST]) == 64
    assert "not empty" in capsys.readouterr().err
    assert cli.main([str(out), *FAST, "--overwrite", "--seed", "2"]) == 0
    assert json.loads((out / "sourcedata/synth/truth.json").read_text())["seed"] == 2


@pytest.mark.parametrize("layout", ["oasis3", "clinica-adni", "openneuro"])
def test_cli_layout(tmp_path, layout):
    out = tmp_path / layout
    assert cli.main([str(out), *FAST, "--layout", layout]) == 0
    meta = json.loads((out / "sourcedata/synth/truth.json").read_text())
    assert meta["parameters"]["layout"] == layout
    sub = {"oasis3": "sub-OAS30001", "clinica-adni": "sub-ADNI011S4105", "openneuro": "sub-1003"}
    assert (out / sub[layout]).is_dir()
    assert cli.main([str(out), *FAST, "--layout", layout, "--overwrite"]) == 0


@pytest.mark.parametrize("layout", ["default", "oasis3", "clinica-adni", "openneuro"])
def test_cli_sites(tmp_path, layout):
    """--sites/--site-effect/--site-prevalence-shift: recorded, a participants.tsv site column in
    every layout, one scanner per site in the MRI sidecars (clinica-adni: its T1w has none)."""
    out = tmp_path / layout
    assert cli.main([str(out), *FAST, "--n-subjects", "2", "--layout", layout, "--sites", "2",
                     "--site-effect", "1.5", "--site-prevalence-shift", "0.5"]) == 0
    params = json.loads((out / "sourcedata/synth/truth.json").read_text())["parameters"]
    assert (params["sites"], params["site_effect"], params["site_prevalence_shift"]) == (2, 1.5, 0.5)
    parts = pd.read_csv(out / "participants.tsv", sep="\t")
    assert list(parts.columns)[-1] == "site" and sorted(parts["site"]) == ["S1", "S2"]
    assert set(json.loads((out / "participants.json").read_text())["site"]["Levels"]) == {"S1", "S2"}
    makers = {json.loads(p.read_text())["Manufacturer"] for p in out.glob("sub-*/ses-*/anat/*.json")}
    assert len(makers) == (0 if layout == "clinica-adni" else 2)


def test_overwrite_never_deletes_foreign_folders(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    assert cli.main([str(tmp_path), *FAST, "--overwrite"]) == 64
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_unwritable_output_is_73(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main([str(blocker / "ds"), *FAST]) == 73


@pytest.mark.parametrize("args", [["--resolution", "0"], ["--contrasts", "T2w"],
                                  ["--n-subjects", "0"], ["--tracers", "FDG"], [],
                                  ["--layout", "adni"], ["--tracers", "AV1451"], ["--sites", "0"],
                                  ["--sites", "7"], ["--site-effect", "-1"],
                                  ["--site-prevalence-shift", "1"]])
def test_usage_errors_are_64(tmp_path, args):
    argv = [str(tmp_path / "x"), *args] if args else []
    try:
        code = cli.main(argv)  # checks done by generate_cohort return the code
    except SystemExit as exc:  # argparse errors exit
        code = exc.code
    assert code == 64


def test_fallback_anatomy_without_mricron(tmp_path):
    out = tmp_path / "ds"
    assert cli.main([str(out), *FAST, "--anatomy", "nilearn"]) == 0
    meta = json.loads((out / "sourcedata/synth/truth.json").read_text())
    assert "synthetic" in meta["anatomy"]["head"] and "geometric" in meta["anatomy"]["regions"]
    if not anatomy.mricron_available():
        assert cli.main([str(tmp_path / "y"), *FAST, "--anatomy", "ch2"]) == 64
