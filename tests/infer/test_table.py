"""The predictions tables: write, read and gather (sorted, complete, safe under concurrency)."""
from __future__ import annotations

import json
import threading

import pytest

from bids_amyloid.infer.predict import ensemble_prediction
from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.infer.table import Prediction, gather_predictions, read_predictions, write_predictions

from helpers import brains as bf


def predictions_path(out, subject, session):
    return Derivatives(out).session(subject, session).predictions()


def _json(path):
    return json.loads(path.with_name(path.name.split(".")[0] + ".json").read_text())


def _fake_table(out, subject, session, contrast="T1w"):
    p = ensemble_prediction([0.3, 0.5], [0.4, 0.4], subject=subject, session=session, contrast=contrast,
                            model_id="abc", testing_only=True)
    write_predictions(predictions_path(out, subject, session), [p], {})
    return p


def test_row_round_trip(tmp_path):
    p = _fake_table(tmp_path, "01", None)
    (row,) = read_predictions(predictions_path(tmp_path, "01", None))
    again = Prediction.from_row(row)
    assert again.session_id is None and again.testing_only is True and again.n_folds == 2
    assert again.probability == pytest.approx(p.probability, rel=1e-5)  # 6 significant digits in the TSV


def test_gather_is_complete_sorted_and_concurrency_safe(tmp_path):
    out = tmp_path / "out"
    for subject, session in (("10", "B"), ("02", None), ("10", "A"), ("03", "A")):
        _fake_table(out, subject, session)
    config = bf.infer_config(out, tmp_path)
    errors = []

    def run():
        try:
            gather_predictions(config)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    target = Derivatives(out).all_predictions
    rows = read_predictions(target)
    assert [(r["participant_id"], r["session_id"]) for r in rows] == [
        ("sub-02", None), ("sub-03", "ses-A"), ("sub-10", "ses-A"), ("sub-10", "ses-B")]
    before = target.read_bytes()
    gather_predictions(config)
    assert target.read_bytes() == before
    assert _json(target)["label"]["Levels"]
    assert not list(target.parent.glob(".tmp-*"))
