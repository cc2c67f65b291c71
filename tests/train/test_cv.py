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


def _sites(subjects, n_sites=3):
    return {s: f"site{int(s) % n_sites}" for s in set(subjects)}


def test_leave_group_out_holds_out_whole_groups():
    subjects, labels = _cohort(n_subjects=36)
    groups = _sites(subjects)
    splits = make_splits(subjects, labels, folds=5, seed=42, groups=groups, group_column="site")
    assert len(splits.folds) == 3 and splits.group_column == "site"  # min(--folds, 3 sites)
    for fold in splits.folds:
        assert len(fold.test_groups) == 1
        assert {groups[s] for s in fold.test} == set(fold.test_groups)
        assert not {groups[s] for s in fold.train + fold.val} & set(fold.test_groups)
    assert sorted(g for f in splits.folds for g in f.test_groups) == ["site0", "site1", "site2"]
    again = Splits.from_json(json.loads(json.dumps(splits.to_json())), "x")
    assert again == splits
    two = make_splits(subjects, labels, folds=2, seed=42, groups=groups, group_column="site")
    assert len(two.folds) == 2 and sorted(len(f.test_groups) for f in two.folds) == [1, 2]


def test_leak_test_catches_a_group_in_two_parts():
    groups = {"1": "A", "2": "A", "3": "B"}
    leaky = Splits((Fold(0, ("1",), ("3",), ("2",), ("A",)),), 42, "site", groups)  # sub-1 trains, sub-2 tested: site A
    with pytest.raises(AssertionError, match="both held out and trained on"):
        check_no_leak(leaky)
    check_no_leak(Splits((Fold(0, ("3",), ("3",) * 0, ("1", "2"), ("A",)),), 42, "site", groups))


def test_leave_group_out_refusals_and_reuse(tmp_path):
    subjects, labels = _cohort(n_subjects=36)
    with pytest.raises(UsageError, match="one group"):
        make_splits(subjects, labels, 5, 42, groups={s: "only" for s in subjects}, group_column="site")
    path = tmp_path / "splits.json"
    groups = _sites(subjects)
    first = load_or_make_splits(path, subjects, labels, 5, 42, groups=groups, group_column="site")
    assert load_or_make_splits(path, subjects, labels, 5, 42, groups=groups, group_column="site") == first
    with pytest.raises(UsageError, match="subject-wise cross-validation"):
        load_or_make_splits(path, subjects, labels, 5, 42)
    moved = {**groups, subjects[0]: "site9"}
    with pytest.raises(UsageError, match="values changed"):
        load_or_make_splits(path, subjects, labels, 5, 42, groups=moved, group_column="site")


def test_subject_groups(caplog):
    from bids_amyloid.train.cv import subject_groups

    values = {("1", "a"): "X", ("1", "b"): "Y", ("1", "c"): "Y", ("2", None): "X"}
    with caplog.at_level("WARNING"):
        groups = subject_groups(list(values), lambda sub, ses: values[(sub, ses)], "site")
    assert groups == {"1": "Y", "2": "X"} and "sub-1 has sessions in ['X', 'Y']" in caplog.text
    with pytest.raises(UsageError, match="sub-3 ses-a has no 'site' value"):
        subject_groups([("3", "a")], lambda sub, ses: None, "site")
