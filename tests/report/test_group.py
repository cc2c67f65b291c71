"""The group report: self-contained HTML, rendered by headless Chromium (skipped only without it)."""
from __future__ import annotations

import pytest

from bids_amyloid.report.group import write_group_report

from helpers import brains as bf
from helpers.reports import CHROMIUM, render, static_checks


def test_group_report(group_output, tmp_path):
    page = write_group_report(group_output)
    assert page == group_output.output_dir / "group" / "group_report.html"
    text = page.read_text()
    static_checks(text)
    for expected in ("TESTING ONLY", "T1w student", "T1w teacher", "Confusion matrices", "Ablations",
                     "no distillation", "Per fold"):
        assert expected in text, expected
    if CHROMIUM is None:
        pytest.skip("chromium not installed")
    result = render(page, tmp_path)
    # ROC + calibration + one confusion matrix per (contrast, model)
    assert result["images"] == 4 and result["broken"] == [] and result["external"] == []


def test_group_report_before_training(tmp_path):
    page = write_group_report(bf.infer_config(tmp_path / "out", tmp_path))
    assert "not found" in page.read_text()
