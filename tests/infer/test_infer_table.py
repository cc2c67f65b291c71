"""The predictions tables: write, read and gather (sorted, complete, safe under concurrency)."""
from __future__ import annotations

import json
import threading

import brainfixtures as bf
from bids_amyloid.infer.predict import ensemble_prediction
from bids_amyloid.infer.table import (GROUP_TABLE, Prediction, gather_predictions, predictions_path, read_table,
                                      write_table)


def _json(path):
    return json.loads(path.with_name(path.name.split(".")[0] + ".json").read_text())


def _fake_table(out, subject, session, contrast="T1w"):
    p = ensemble_prediction([0.3, 0.5], [0.4, 0.4], subject=subject, session=session, contrast=contrast,
                            model_id="abc", testing_only=True)
    write_table(predictions_path(out, subject, session), [p])
    return p


def test_row_round_trip(tmp_path):
    p = _fake_table(tmp_path, "01", None)
    (row,) = read_table(predictions_path(tmp_path, "01", None))
    assert Prediction.from_row(row).row() == p.row() and Prediction.from_row(row).session_id is None


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
    target = out / GROUP_TABLE
    rows = read_table(target)
    assert [(r["participant_id"], r["session_id"]) for r in rows] == [
        ("sub-02", "n/a"), ("sub-03", "ses-A"), ("sub-10", "ses-A"), ("sub-10", "ses-B")]
    before = target.read_bytes()
    gather_predictions(config)
    assert target.read_bytes() == before
    assert _json(target)["label"]["Levels"]
    assert not list(target.parent.glob(".tmp-*"))
