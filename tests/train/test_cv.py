"""Subject-level splits: no leakage, saved once and reused, refusals for unusable data."""
import json

import numpy as np
import pytest

from bids_amyloid.errors import DataError, UsageError
from bids_amyloid.train.cv import Fold, Splits, check_no_leak, load_or_make_splits, make_splits


def _cohort(n_subjects=30, sessions=3, seed=0):
    rng = np.random.default_rng(seed)
    subjects, labels = [], []
    for i in range(n_subjects):
        base = int(rng.random() < 0.35)
        for _ in range(sessions):
            subjects.append(f"{i:03d}")
            labels.append(base if rng.random() > 0.1 else 1 - base)  # some converters
    return subjects, labels


def test_no_subject_crosses_train_val_test():
    subjects, labels = _cohort()
    splits = make_splits(subjects, labels, folds=5, seed=42)
    assert len(splits.folds) == 5
    tested = []
    for fold in splits.folds:
        assert not set(fold.train) & set(fold.val)
        assert not set(fold.train) & set(fold.test)
        assert not set(fold.val) & set(fold.test)
        assert set(fold.train) | set(fold.val) | set(fold.test) == set(subjects)
        tested += fold.test
    assert sorted(tested) == sorted(set(subjects))  # every subject held out exactly once
    bad = Splits((Fold(0, ("1", "2"), ("2",), ("3",)),), 42)
    with pytest.raises(AssertionError):
        check_no_leak(bad)


def test_splits_are_saved_once_and_reused(tmp_path):
    subjects, labels = _cohort()
    path = tmp_path / "models" / "splits.json"
    first = load_or_make_splits(path, subjects, labels, 5, 42)
    text = path.read_text()
    # a different seed is ignored once the file exists: the saved splits win
    again = load_or_make_splits(path, subjects, labels, 5, 7)
    assert again == first and path.read_text() == text
    assert json.loads(text)["folds"][0]["test"] == list(first.folds[0].test)
    with pytest.raises(UsageError, match="folds"):
        load_or_make_splits(path, subjects, labels, 3, 42)
    with pytest.raises(UsageError, match="does not cover"):
        load_or_make_splits(path, subjects + ["999"], labels + [1], 5, 42)
    path.write_text("{not json")
    with pytest.raises(DataError):
        load_or_make_splits(path, subjects, labels, 5, 42)


def test_refuses_one_class_and_too_few_subjects():
    with pytest.raises(DataError, match="both classes"):
        make_splits(["a", "b", "c"], [1, 1, 1], 2, 0)
    with pytest.raises(UsageError, match="too few subjects"):
        make_splits(["a", "b", "c", "d", "e"], [0, 0, 0, 1, 1], 5, 0)


def test_the_minimum_subjects_per_class_is_enough():
    from bids_amyloid.train.cv import min_subjects_per_class

    assert [min_subjects_per_class(k) for k in (2, 3, 5)] == [4, 3, 5]
    for folds in (2, 3, 5):
        n = min_subjects_per_class(folds)
        subjects, labels = [f"s{i}" for i in range(2 * n)], [i % 2 for i in range(2 * n)]
        for seed in range(5):
            splits = make_splits(subjects, labels, folds, seed)  # every train/val part holds both classes
            assert len(splits.folds) == folds
        with pytest.raises(UsageError):
            make_splits(subjects[:-2], labels[:-2], folds, 0)
