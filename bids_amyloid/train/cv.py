"""Subject-level cross-validation splits, made once and saved (nnU-Net's ``splits_final.json``).

Outer folds: ``StratifiedGroupKFold(k, shuffle=True, random_state=split_seed)`` over the labelled
sessions, grouped by subject and stratified by label. Inside each outer fold the training
subjects are split again the same way (``max(2, k - 1)`` folds, first one kept) into train and
validation: validation data drive early stopping and the decision threshold; the held-out
fold is only predicted. With k = 5 this is the paper's 3/1/1 fold layout, rotated over all
five folds. :func:`check_no_leak` asserts that no subject is in two parts of a fold.

Leave-group-out (``--cv-group-column site``): the outer folds hold out whole groups instead
(``StratifiedGroupKFold`` over the group values, min(k, number of groups) folds, so with k at
least the number of sites it is leave-one-site-out); the inner validation split stays
subject-wise. Each subject belongs to one group; :func:`check_no_leak` then also asserts that no
group is both held out and trained on.
"""
from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    test_groups: tuple[str, ...] = ()
    """Leave-group-out: the group values this fold holds out."""


@dataclass(frozen=True)
class Splits:
    folds: tuple[Fold, ...]
    seed: int
    group_column: str | None = None
    """Leave-group-out: the column whose groups are held out (None: subject-wise folds)."""
    groups: dict[str, str] = field(default_factory=dict)
    """Leave-group-out: subject -> group value."""

    def to_json(self) -> dict:
        method = ("StratifiedGroupKFold by subject, stratified by label; inner validation split likewise"
                  if self.group_column is None else
                  f"StratifiedGroupKFold by {self.group_column!r} (whole groups held out), stratified by label; "
                  "inner validation split by subject")
        return {
            "format": SPLITS_FORMAT,
            "method": method,
            "n_folds": len(self.folds),
            "seed": self.seed,
            "group_column": self.group_column,
            "groups": dict(sorted(self.groups.items())),
            "folds": [{"fold": f.index, "train": list(f.train), "val": list(f.val), "test": list(f.test),
                       "test_groups": list(f.test_groups)} for f in self.folds],
        }

    @classmethod
    def from_json(cls, data: dict, source: Path) -> "Splits":
        try:
            if data["format"] != SPLITS_FORMAT:
                raise KeyError("format")
            folds = tuple(Fold(int(f["fold"]), tuple(f["train"]), tuple(f["val"]), tuple(f["test"]),
                               tuple(f.get("test_groups", ()))) for f in data["folds"])
            return cls(folds, int(data["seed"]), data.get("group_column"), dict(data.get("groups") or {}))
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


def subject_groups(sessions: Sequence[tuple[str, str | None]], value_of: Callable[[str, str | None], str | None],
                   column: str) -> dict[str, str]:
    """Each subject's group for leave-group-out CV: the value of ``column`` for its sessions. A
    subject whose sessions differ gets its most frequent value (warned: its other sessions are
    held out with that group); a session without a value is a UsageError naming it."""
    values: dict[str, Counter] = {}
    for subject, session in sessions:
        value = value_of(subject, session)
        if value is None:
            where = f"sub-{subject}" + (f" ses-{session}" if session else "")
            raise UsageError(f"--cv-group-column {column}: {where} has no {column!r} value (n/a or missing); "
                             "every labelled session needs one")
        values.setdefault(subject, Counter())[value] += 1
    groups = {}
    for subject, counts in values.items():
        groups[subject] = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        if len(counts) > 1:
            log.warning("--cv-group-column %s: sub-%s has sessions in %s; the subject goes with %r (a subject is "
                        "never split across folds)", column, subject, sorted(counts), groups[subject])
    return groups


def n_outer_folds(folds: int, groups: Mapping[str, str] | None) -> int:
    """k, or with leave-group-out min(k, number of groups)."""
    return min(folds, len(set(groups.values()))) if groups else folds


def make_splits(subjects: Sequence[str], labels: Sequence[int], folds: int, seed: int, *,
                groups: Mapping[str, str] | None = None, group_column: str | None = None) -> Splits:
    """Outer and inner subject splits of the labelled sessions (one entry per session); with
    ``groups`` (subject -> value of ``group_column``) the outer folds hold out whole groups."""
    check_class_balance(subjects, labels, folds)
    subj, y = np.asarray(subjects, dtype=object), np.asarray(labels, dtype=int)
    outer_groups, n_outer = subj, folds
    if groups:
        outer_groups = np.asarray([groups[s] for s in subjects], dtype=object)
        if len(set(outer_groups)) < 2:
            raise UsageError(f"--cv-group-column {group_column}: all sessions are in one group "
                             f"({outer_groups[0]!r}); leave-group-out needs at least two")
        n_outer = n_outer_folds(folds, groups)
        log.info("leave-%s-out cross-validation: %d groups in %d folds", group_column, len(set(outer_groups)), n_outer)
    result = []
    for k, test_idx in enumerate(_group_kfold(y, outer_groups, n_outer, seed)):
        rest = np.setdiff1d(np.arange(len(y)), test_idx)
        # the validation share is the subject-wise one (1 / (k - 1) of the rest) whatever the groups
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
        held_out = tuple(sorted(set(outer_groups[test_idx]))) if groups else ()
        result.append(Fold(k, *parts, test_groups=held_out))
    splits = Splits(tuple(result), seed, group_column if groups else None, dict(groups or {}))
    check_no_leak(splits)
    return splits


def check_no_leak(splits: Splits) -> None:
    """Assert that no subject is in two parts of any fold, and each subject is tested once; with
    leave-group-out also that no group of a fold's held-out part is in its train or val part."""
    tested: list[str] = []
    for fold in splits.folds:
        parts = [set(fold.train), set(fold.val), set(fold.test)]
        for i in range(3):
            for j in range(i + 1, 3):
                shared = parts[i] & parts[j]
                if shared:
                    raise AssertionError(f"fold {fold.index}: subject(s) {sorted(shared)[:5]} cross train/val/test")
        if splits.groups:
            held_out = {splits.groups[s] for s in fold.test}
            trained = {splits.groups[s] for s in fold.train + fold.val}
            if held_out & trained or held_out != set(fold.test_groups):
                raise AssertionError(f"fold {fold.index}: group(s) {sorted(held_out & trained)} of "
                                     f"{splits.group_column!r} are both held out and trained on")
        tested += fold.test
    if len(tested) != len(set(tested)):
        raise AssertionError("a subject is in the test part of two folds")


def load_or_make_splits(path: Path, subjects: Sequence[str], labels: Sequence[int], folds: int, seed: int,
                        *, write: bool = True, groups: Mapping[str, str] | None = None,
                        group_column: str | None = None) -> Splits:
    """Reuse ``path`` when it exists (it must cover every subject and be of the same kind), else
    make and write it."""
    path = Path(path)
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise DataError(f"{path}: unreadable splits file ({exc}); delete it to make new splits") from exc
        splits = Splits.from_json(data, path)
        if splits.group_column != (group_column if groups else None):
            was = f"leave-{splits.group_column}-out" if splits.group_column else "subject-wise"
            now = f"leave-{group_column}-out" if groups else "subject-wise"
            raise UsageError(f"{path} holds {was} splits but this run asks for {now} cross-validation; "
                             "delete it (or use another output folder) to make new splits")
        if groups and any(groups.get(s, g) != g for s, g in splits.groups.items()):
            raise UsageError(f"{path}: the {group_column!r} values changed since the splits were made; "
                             "delete it to make new splits")
        if len(splits.folds) != n_outer_folds(folds, groups):
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
    splits = make_splits(subjects, labels, folds, seed, groups=groups, group_column=group_column)
    if write:
        atomic_write_json(path, splits.to_json())
        log.info("wrote %d-fold subject splits to %s", folds, path)
    return splits
