"""Report figures: self-contained SVG data URIs; the ROC band."""
from __future__ import annotations

import base64

import pytest

from bids_amyloid.report import figures


def test_figures_are_data_uris():
    y, p = [0, 1, 0, 1, 1, 0, 0, 1], [0.1, 0.8, 0.3, 0.6, 0.9, 0.4, 0.2, 0.55]
    for uri in (figures.roc_figure({"T1w student": (y, p)}, n_boot=20), figures.calibration_figure({"a": (y, p)}),
                figures.confusion_figure(y, [int(v >= 0.5) for v in p], "T1w")):
        assert uri.startswith("data:image/svg+xml;base64,")
        assert b"<svg" in base64.b64decode(uri.split(",", 1)[1])
    band = figures.roc_band(y, p, n_boot=50)
    assert band["auc"] == pytest.approx(1.0) and (band["low"] <= band["high"] + 1e-9).all()
