"""Subject-level cross-validation splits, made once and saved (nnU-Net's ``splits_final.json``).

Outer folds: ``StratifiedGroupKFold(k, shuffle=True, random_state=split_seed)`` over the labelled
sessions, grouped by subject and stratified by label. Inside each outer fold the training
subjects are split again the same way (``max(2, k - 1)`` folds, first one kept) into train and
validation: validation data drive early stopping and the decision threshold; the held-out
fold is only predicted. With k = 5 this is the paper's 3/1/1 fold layout, rotated over all
five folds. :func:`check_no_leak` asserts that no subject is in two parts of a fold.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from bids_amyloid.bids.io import atomic_write_json
from bids_amyloid.errors import DataError, UsageError

log = logging.getLogger("bids_amyloid.train")

SPLITS_FORMAT = "bids_amyloid-splits"


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    """Subject labels (without ``sub-``) of each part."""


@dataclass(frozen=True)
class Splits:
    folds: tuple[Fold, ...]
    seed: int

    def to_json(self) -> dict:
        return {
            "format": SPLITS_FORMAT,
            "method": "StratifiedGroupKFold by subject, stratified by label; inner validation split likewise",
            "n_folds": len(self.folds),
            "seed": self.seed,
            "folds": [{"fold": f.index, "train": list(f.train), "val": list(f.val), "test": list(f.test)}
                      for f in self.folds],
        }

    @classmethod
    def from_json(cls, data: dict, source: Path) -> "Splits":
        try:
            if data["format"] != SPLITS_FORMAT:
                raise KeyError("format")
            folds = tuple(Fold(int(f["fold"]), tuple(f["train"]), tuple(f["val"]), tuple(f["test"]))
                          for f in data["folds"])
            return cls(folds, int(data["seed"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source}: not a bids_amyloid splits file ({exc}); delete it to make new splits") from exc


def _group_kfold(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> list[np.ndarray]:
    """Test indices of each fold."""
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(y)), y, groups)]


def min_subjects_per_class(folds: int) -> int:
    """Fewest subjects of a class that leave, in every outer fold, one of them in each inner
    part: n - ceil(n / folds) held-in subjects must fill max(2, folds - 1) inner folds."""
    n = 2
    while n - math.ceil(n / folds) < max(2, folds - 1):
        n += 1
    return n


def check_class_balance(subjects: Sequence[str], labels: Sequence[int], folds: int) -> None:
    """Refuse data that k-fold CV cannot use: one class only, or too few subjects per class."""
    y = np.asarray(labels, dtype=int)
    if len(np.unique(y)) < 2:
        raise DataError(f"all {len(y)} labelled sessions are amyloid {'positive' if y[0] else 'negative'}: "
                        "a classifier needs both classes")
    per_class = {c: len({s for s, label in zip(subjects, y) if label == c}) for c in (0, 1)}
    need = min_subjects_per_class(folds)
    if min(per_class.values()) < need:
        raise UsageError(f"too few subjects for {folds}-fold cross-validation: {per_class[1]} positive and "
                         f"{per_class[0]} negative subject(s); each class needs >= {need} (use fewer --folds)")


def make_splits(subjects: Sequence[str], labels: Sequence[int], folds: int, seed: int) -> Splits:
    """Outer and inner subject splits of the labelled sessions (one entry per session)."""
    check_class_balance(subjects, labels, folds)
    subj, y = np.asarray(subjects, dtype=object), np.asarray(labels, dtype=int)
    result = []
    for k, test_idx in enumerate(_group_kfold(y, subj, folds, seed)):
        rest = np.setdiff1d(np.arange(len(y)), test_idx)
        inner = _group_kfold(y[rest], subj[rest], max(2, folds - 1), seed + 1 + k)
        val_idx = rest[inner[0]]
        train_idx = np.setdiff1d(rest, val_idx)
        parts = [tuple(sorted(set(subj[i]))) for i in (train_idx, val_idx, test_idx)]
        for name, idx in zip(("train", "validation"), (train_idx, val_idx)):
            if len(np.unique(y[idx])) < 2:
                raise UsageError(f"fold {k}: the {name} part has one class only; too few subjects per class "
                                 f"for {folds}-fold cross-validation (use fewer --folds)")
        if len(np.unique(y[test_idx])) < 2:
            log.warning("fold %d: the held-out part has one class only (no per-fold AUC; the pooled "
                        "out-of-fold metrics still count it)", k)
        result.append(Fold(k, *parts))
    splits = Splits(tuple(result), seed)
    check_no_leak(splits)
    return splits


def check_no_leak(splits: Splits) -> None:
    """Assert that no subject is in two parts of any fold, and each subject is tested once."""
    tested: list[str] = []
    for fold in splits.folds:
        parts = [set(fold.train), set(fold.val), set(fold.test)]
        for i in range(3):
            for j in range(i + 1, 3):
                shared = parts[i] & parts[j]
                if shared:
                    raise AssertionError(f"fold {fold.index}: subject(s) {sorted(shared)[:5]} cross train/val/test")
        tested += fold.test
    if len(tested) != len(set(tested)):
        raise AssertionError("a subject is in the test part of two folds")


def load_or_make_splits(path: Path, subjects: Sequence[str], labels: Sequence[int], folds: int, seed: int,
                        *, write: bool = True) -> Splits:
    """Reuse ``path`` when it exists (it must cover every subject), else make and write it."""
    path = Path(path)
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise DataError(f"{path}: unreadable splits file ({exc}); delete it to make new splits") from exc
        splits = Splits.from_json(data, path)
        if len(splits.folds) != folds:
            raise UsageError(f"{path} holds {len(splits.folds)} folds but --folds is {folds}; "
                             "delete it to make new splits, or keep the same number of folds")
        known = {s for f in splits.folds for s in f.test}
        missing = sorted(set(subjects) - known)
        if missing:
            raise UsageError(f"{path} does not cover subject(s) {missing[:10]} (new data?); "
                             "delete it to make new splits")
        check_no_leak(splits)
        log.info("reusing the cross-validation splits in %s", path)
        return splits
    splits = make_splits(subjects, labels, folds, seed)
    if write:
        atomic_write_json(path, splits.to_json())
        log.info("wrote %d-fold subject splits to %s", folds, path)
    return splits
