"""The participant report: self-contained HTML, rendered by headless Chromium (skipped only without it)."""
from __future__ import annotations

import pytest

from bids_amyloid.report.participant import entities, write_participant_report

from helpers import brains as bf
from helpers.reports import CHROMIUM, render, static_checks


def test_entities():
    assert entities("sub-01_ses-02_space-X_desc-gradcamT1w_saliency.nii.gz") == {
        "sub": "01", "ses": "02", "space": "X", "desc": "gradcamT1w", "suffix": "saliency"}


def test_participant_report(participant_output, tmp_path):
    config = participant_output
    page = write_participant_report("sub-01", config)
    assert page == config.output_dir / "sub-01.html"
    text = page.read_text()
    static_checks(text)
    for expected in ("TESTING ONLY", "Session 01", "Session 02", "ses-02", "Grad-CAM", "Input gradient",
                     "Preprocessing quality control", "Provenance", "Precuneus",
                     "n/a: the model has no operating points"):  # a bundle without calibration: zones n/a
        assert expected in text, expected
    assert len(list((config.output_dir / "sub-01" / "figures").glob("*_saliency.png"))) == 4  # cached overlays
    if CHROMIUM is None:
        pytest.skip("chromium not installed")
    result = render(page, tmp_path)
    # strip + 2 native overlays (ses-01) + 2 template overlays (ses-02) + 1 QC figure
    assert result["images"] == 6 and result["broken"] == [] and result["external"] == []


def test_zone_meanings_are_shown_for_the_zones_present():
    from bids_amyloid.report.participant import _zone_notes

    text = _zone_notes([{"zone": "rule-out"}, {"zone": "rule-in"}, {"zone": None}])
    assert "rule-out: the probability is below" in text and "rule-in: from the rule-in" in text
    assert "n/a: the model has no operating points" in text and "intermediate:" not in text
    assert text.index("rule-out:") < text.index("rule-in:") < text.index("n/a:")


def test_participant_report_without_predictions(tmp_path):
    out = tmp_path / "out"
    (out / "sub-07" / "ses-01" / "anat").mkdir(parents=True)
    page = write_participant_report("07", bf.infer_config(out, tmp_path))
    text = page.read_text()
    assert "No predictions" in text and "Session 01" in text
    static_checks(text)
