"""One fold's decision rule: its probability calibrator and its operating points.

Each fold's model has its own probability scale. A calibrator, fitted on the fold's VALIDATION
part only, maps it onto observed frequencies, so that the folds can be averaged as
probabilities and a probability means what it says. Methods (``--calibration``):

* ``platt``: q = sigmoid(a logit p + b), maximum likelihood on Platt's smoothed targets
  ((N+ + 1) / (N+ + 2) for positives, 1 / (N- + 2) for negatives), so that a validation part of
  twenty sessions does not yield 0 / 1 probabilities; a >= 0 keeps the ranking;
* ``temperature``: q = sigmoid(logit p / T) (one parameter, no shift);
* ``isotonic``: scikit-learn's monotone step function; it overfits small sets (Niculescu-Mizil
  and Caruana 2005 saw it lose to Platt below about 1,000 calibration samples);
* ``auto`` (default): isotonic from :data:`ISOTONIC_MIN` validation sessions, else Platt;
* ``none``: no calibrator (the ensemble aligns the folds at their thresholds instead).

Operating points (:class:`FoldDecision`): the F1 / Youden threshold on the model's own scale,
and on the calibrated scale the rule-out threshold (below it: ruled out, chosen for a target
sensitivity) and the rule-in threshold (from it: ruled in, for a target specificity). They are
stored as plain JSON in ``bundle.json`` (no pickles).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

ISOTONIC_MIN = 1000
"""Validation sessions from which 'auto' calibration is isotonic rather than Platt."""
ZONES = ("rule-out", "intermediate", "rule-in")
EPS = 1e-6


def logit(x: Any) -> np.ndarray:
    """logit, with probabilities kept 1e-6 away from 0 and 1 (a saturated fold stays finite)."""
    x = np.clip(np.asarray(x, dtype=np.float64), EPS, 1 - EPS)
    return np.log(x) - np.log1p(-x)


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from one fold's probabilities to calibrated ones."""

    method: str
    """'platt', 'temperature' or 'isotonic'."""
    params: dict[str, Any]
    """platt: a, b; temperature: temperature; isotonic: x, y (knots, interpolated linearly)."""
    n: int = 0
    n_positive: int = 0
    """Validation sessions (and positives) it was fitted on."""

    def __call__(self, p: Any) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "platt":
            return expit(self.params["a"] * logit(p) + self.params["b"])
        if self.method == "temperature":
            return expit(logit(p) / self.params["temperature"])
        if self.method == "isotonic":
            return np.interp(p, self.params["x"], self.params["y"])
        raise ValueError(f"unknown calibration method {self.method!r}")

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, **self.params, "n": self.n, "n_positive": self.n_positive}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibrator:
        data = dict(data)
        method, n, n_pos = data.pop("method"), int(data.pop("n", 0)), int(data.pop("n_positive", 0))
        keys = {"platt": ("a", "b"), "temperature": ("temperature",), "isotonic": ("x", "y")}[method]
        return cls(method, {k: data[k] for k in keys}, n, n_pos)


def _nll(q: np.ndarray, target: np.ndarray) -> float:
    q = np.clip(q, 1e-12, 1 - 1e-12)
    return float(-np.sum(target * np.log(q) + (1 - target) * np.log1p(-q)))


def fit_calibrator(y: Sequence[int], p: Sequence[float], method: str) -> Calibrator | None:
    """The calibrator of ``method`` fitted on validation labels ``y`` and probabilities ``p``;
    None for 'none' or when the validation part lacks a class (nothing to calibrate against)."""
    y_arr, p_arr = np.asarray(y, dtype=int), np.asarray(p, dtype=np.float64)
    n, n_pos = len(y_arr), int(y_arr.sum())
    if method == "none" or n_pos in (0, n):
        return None
    if method == "auto":
        method = "isotonic" if n >= ISOTONIC_MIN else "platt"
    z = logit(p_arr)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(p_arr, y_arr)
        return Calibrator("isotonic", {"x": [float(v) for v in iso.X_thresholds_],
                                       "y": [float(v) for v in iso.y_thresholds_]}, n, n_pos)
    if method == "platt":
        target = np.where(y_arr == 1, (n_pos + 1) / (n_pos + 2), 1 / (n - n_pos + 2))
        fit = minimize(lambda ab: _nll(expit(ab[0] * z + ab[1]), target), x0=np.array([1.0, 0.0]),
                       method="L-BFGS-B", bounds=[(0.0, None), (None, None)])
        return Calibrator("platt", {"a": float(fit.x[0]), "b": float(fit.x[1])}, n, n_pos)
    if method == "temperature":
        fit = minimize(lambda t: _nll(expit(z / math.exp(t[0])), y_arr.astype(float)), x0=np.array([0.0]),
                       method="L-BFGS-B", bounds=[(-5.0, 5.0)])
        return Calibrator("temperature", {"temperature": float(math.exp(fit.x[0]))}, n, n_pos)
    raise ValueError(f"unknown calibration method {method!r}")


@dataclass(frozen=True)
class FoldDecision:
    """What one fold's model decides with (bundle.json's fold entry)."""

    threshold: float
    """Decision threshold (F1 or Youden on validation data), on the model's own probability scale."""
    calibrator: Calibrator | None = None
    rule_out: float | None = None
    """Below this (calibrated) probability a session is ruled out; None: not available."""
    rule_in: float | None = None
    """From this (calibrated) probability on a session is ruled in; None: not available."""

    def calibrate(self, p: Any) -> np.ndarray:
        """Calibrated probabilities (the model's own without a calibrator)."""
        return self.calibrator(p) if self.calibrator is not None else np.asarray(p, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"threshold": float(self.threshold),
                "calibrator": self.calibrator.to_json() if self.calibrator else None,
                "rule_out_threshold": _finite_or_none(self.rule_out),
                "rule_in_threshold": _finite_or_none(self.rule_in)}

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> FoldDecision:
        """A bundle's fold entry; entries of bundles made before calibration have threshold only."""
        calibrator = entry.get("calibrator")
        return cls(float(entry["threshold"]), Calibrator.from_json(calibrator) if calibrator else None,
                   _finite_or_none(entry.get("rule_out_threshold")), _finite_or_none(entry.get("rule_in_threshold")))


def _finite_or_none(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def zone(p: float, rule_out: float | None, rule_in: float | None) -> str:
    """'rule-out' below ``rule_out``, 'rule-in' from ``rule_in`` on (it wins where the two overlap,
    so that no session is ruled out that the rule-in threshold calls positive), else
    'intermediate'; 'n/a' without operating points."""
    if rule_out is None or rule_in is None:
        return "n/a"
    if p >= rule_in:
        return "rule-in"
    return "rule-out" if p < rule_out else "intermediate"
