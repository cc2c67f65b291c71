"""Fixtures for the report tests: a predicted participant and a group-level output folder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import brains as bf


@pytest.fixture(autouse=True)
def _isolated(isolated_inference):
    """No real weights folder is visible; 2 torch threads; a fresh model cache (tests/conftest.py)."""


@pytest.fixture(scope="session")
def report_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-group") / "out"
    bf.make_bundle(root / "models", root.parent)
    return root


@pytest.fixture(scope="session")
def participant_output(tmp_path_factory, report_bundle):
    """sub-01 with two sessions predicted (one without native space), plus a preprocessing QC SVG."""
    from bids_amyloid.infer.predict import predict_session
    from bids_amyloid.infer.table import gather_predictions
    from bids_amyloid.preprocess.qc import registration_figure
    from nilearn import datasets

    out = tmp_path_factory.mktemp("report-participant") / "out"
    config = bf.infer_config(out, report_bundle)
    record = bf.make_preprocessed(out, "01", "01")
    predict_session(bf.session("01", "01"), record, config)
    config.infer.native_saliency = False
    record = bf.make_preprocessed(out, "01", "02", native=False)
    predict_session(bf.session("01", "02"), record, config)
    config.infer.native_saliency = True
    gather_predictions(config)
    figure = out / "sub-01" / "figures" / "sub-01_ses-01_desc-reg_T1w.svg"
    figure.parent.mkdir(parents=True, exist_ok=True)
    registration_figure(bf.template_brain(), datasets.load_mni152_brain_mask(resolution=1), figure, "T1w -> template")
    return config


@pytest.fixture(scope="session")
def group_output(report_bundle):
    """The files workflows/group.py writes, made with its own column list and metrics code."""
    import pandas as pd

    from bids_amyloid.train.evaluation import metrics_table
    from bids_amyloid.workflows.group import PREDICTION_COLUMNS

    out = report_bundle
    rng = np.random.default_rng(0)
    rows = []
    for model in ("student", "teacher"):
        for i in range(40):
            label = int(i % 3 == 0)
            fold = i % 5
            p = float(np.clip(0.35 + 0.3 * label + rng.normal(0, 0.18 if model == "student" else 0.1), 0.01, 0.99))
            threshold = 0.45 + 0.02 * fold
            rows.append({"participant_id": f"sub-{i:02d}", "session_id": "ses-01", "contrast": "T1w",
                         "tracer": "PiB" if model == "teacher" else None, "model": model, "fold": fold,
                         "part": "test", "label": label, "centiloid": 40.0 if label else 5.0, "probability": p,
                         "threshold": threshold, "prediction": int(p >= threshold)})
    frame = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    group = out / "group"
    group.mkdir(parents=True, exist_ok=True)
    frame.to_csv(group / "desc-oof_predictions.tsv", sep="\t", index=False, na_rep="n/a", float_format="%.6g")
    metrics_table(frame, n_boot=50, seed=0).to_csv(group / "desc-cv_metrics.tsv", sep="\t", index=False,
                                                   na_rep="n/a", float_format="%.6g")
    pd.DataFrame([{"variant": "full", "auc": 0.74}, {"variant": "no distillation", "auc": 0.69}]).to_csv(
        group / "desc-ablation_metrics.tsv", sep="\t", index=False)
    (out / "logs").mkdir(exist_ok=True)
    (out / "logs" / "group_config.json").write_text(json.dumps({"config": {"seed": 1234}}))
    return bf.infer_config(out, out)
