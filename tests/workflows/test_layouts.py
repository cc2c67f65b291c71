"""Participant then group level on each real-data layout of the generator (tiny backbone, 3 folds).

oasis3 (the OASIS download: acq- tracers, raw 4-D PET, days-labelled sessions, labels in a CSV
beside the data), clinica-adni (no sidecars, FDG beside amyloid, month bins) and openneuro (DLBS:
waves, static PET with a two-frame JSON, tau, no labels in the dataset). The default layout runs
in test_end_to_end.py. The derivatives must pass the BIDS validator.
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LABELS = {  # where each layout keeps its labels, and the column
    "oasis3": ("sourcedata/labels/OASIS3_amyloid_centiloid.csv", "Centiloid_fSUVR_rsf_TOT_CORTMEAN"),
    "clinica-adni": (None, "centiloid"),
    "openneuro": ("sourcedata/labels/amyloid_labels.tsv", "centiloid"),
}


def _label_options(bids: Path, layout: str) -> list[str]:
    """The layout's label options, with a threshold that splits the labelled subjects 3 / 3 (3 folds)."""
    from bids_amyloid.bids.layout import discover
    from bids_amyloid.config import Config, LabelConfig

    table, column = LABELS[layout]
    options = ["--centiloid-column", column] + (["--labels-file", str(bids / table)] if table else [])
    config = Config(bids_dir=bids, output_dir=bids.parent / "unused", analysis_level="group",
                    skip_bids_validation=True, labels=LabelConfig(column, labels_file=bids / table if table else None))
    maxima: dict[str, float] = {}
    for s in discover(config).sessions:
        if s.pet and s.centiloid is not None:
            maxima[s.subject] = max(maxima.get(s.subject, -1e9), s.centiloid)
    ordered = sorted(maxima.values(), reverse=True)
    assert len(ordered) >= 6, maxima
    return options + ["--centiloid-threshold", f"{(ordered[2] + ordered[3]) / 2:.4f}"]


def _run(bids: Path, out: Path, level: str, weights: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bids_amyloid", str(bids), str(out), level, "--sloppy", "--skip-bids-validation",
           "-w", str(out.parent / "work"), "--backbone-weights", str(weights), *extra]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module", params=["oasis3", "clinica-adni", "openneuro"])
def layout_run(request, tmp_path_factory, tiny_weights):
    from bids_amyloid.synth import generate_cohort

    root = tmp_path_factory.mktemp(request.param)
    bids = generate_cohort(root / "bids", n_subjects=6, seed=1, resolution=2.0, contrasts=("T1w",),
                           layout=request.param).root
    out = root / "out"
    participant = _run(bids, out, "participant", tiny_weights, "--nprocs", "2")
    group = _run(bids, out, "group", tiny_weights, "--folds", "3", *_label_options(bids, request.param))
    return request.param, bids, out, participant, group


def test_participant_and_group_level_complete(layout_run):
    layout, bids, out, participant, group = layout_run
    assert (out / "models" / "manifest.json").is_file()
    assert (out / "group" / "desc-oof_predictions.tsv").is_file()
    assert "run summary:" in participant.stderr and "0 failed" in participant.stderr
    suvr = sorted(out.glob("sub-*/ses-*/pet/*_desc-suvr_pet.nii.gz"))
    assert suvr and all("_trc-" in p.name for p in suvr)


def test_derivatives_pass_the_bids_validator(layout_run):
    _, _, out, _, _ = layout_run
    validator = shutil.which("bids-validator-deno")
    if validator is None:
        pytest.skip("bids-validator-deno not installed")
    result = subprocess.run([validator, str(out), "--format", "json"], capture_output=True, text=True, timeout=300)
    errors = [(i.get("code"), i.get("location")) for i in json.loads(result.stdout)["issues"]["issues"]
              if i.get("severity") == "error"]
    assert result.returncode == 0 and not errors, errors[:10]


def test_run_summary_names_every_quirk_of_the_layout(layout_run):
    layout, bids, out, _, _ = layout_run
    scans = _table(out / "logs" / "participant-all_scans.tsv")
    pairing = _table(out / "logs" / "participant-all_pairing.tsv")
    reasons = " | ".join(r["reason"] for r in scans if r["status"] == "skipped")
    unpaired = [p for p in pairing if p["mri_session_id"] == "n/a"]
    used_pet = [r for r in scans if r["kind"] == "pet" and r["status"] == "used"]
    if layout == "oasis3":
        assert "non-amyloid tracer flortaucipir" in reasons  # quirk 8: tau in the tree
        assert "unreadable: named .gz but not gzip data" in reasons  # quirk 10: HTML page
        assert "another PiB run was used" in reasons  # quirk 3: two runs of one tracer
        assert unpaired and "day label" in unpaired[0]["dates_from"]  # quirk 1: > 365 days away
        assert any(p["dates_from"] == "day label" and p["mri_session_id"] != p["pet_session_id"] for p in pairing)
        assert {r["tracer"] for r in used_pet} == {"PiB", "florbetapir"}  # quirk 2: tracer only in acq-
        statics = sorted(out.glob("sub-*/ses-*/pet/*_desc-static_pet.nii.gz"))
        assert len(statics) == len(used_pet)  # quirk 4: every raw 4-D PET became a static image
    elif layout == "clinica-adni":
        assert reasons.count("non-amyloid tracer FDG") >= 2  # quirk 8
        assert unpaired and unpaired[0]["dates_from"] == "month label"
        assert {r["tracer"] for r in used_pet} == {"florbetapir", "florbetaben"}
        assert not list(out.glob("sub-*/ses-*/pet/*_desc-static_pet.nii.gz"))  # 3-D PET used as it is
    else:
        assert "non-amyloid tracer flortaucipir" in reasons
        assert unpaired and unpaired[0]["dates_from"] == "acq_time (sessions.tsv)"
        suvr = next(out.glob("sub-*/ses-*/pet/*_desc-suvr_pet.json"))
        notes = json.loads(suvr.read_text())["FrameTimingNotes"]  # quirk 4: a 2-frame JSON for one volume
        assert any("zero-length" in n for n in notes)
