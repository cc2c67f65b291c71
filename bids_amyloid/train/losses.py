"""Losses of phases 1 and 2 and their epoch schedules (method.md 4.2, 4.3).

Every term is computed WITH autograd (the reference scripts computed the cosine penalty under
``no_grad``, so it never acted). Epochs are counted from 0 within their phase.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from bids_amyloid.config import Phase1Recipe, Phase2Recipe

P1, P2 = Phase1Recipe(), Phase2Recipe()
"""The method's numbers (the defaults of ``config.train.recipe``)."""


# ---------------------------------------------------------------------------------- schedules

def cos_penalty_scale(epoch: int, r: Phase1Recipe = P1) -> float:
    """s of the cosine penalty: 0.1 up to epoch 3, then +0.1 per epoch, capped at 1.0 (epoch 12)."""
    start, step, after = r.cos_scale
    return min(1.0, start + step * max(0, epoch - after))


def _ramp(epoch: float, start: float, end: float) -> float:
    """0 before ``start``, 1 from ``end``, linear between."""
    return min(1.0, max(0.0, (epoch - start) / (end - start)))


def distill_weights(epoch: int, r: Phase2Recipe = P2) -> tuple[float, float, float]:
    """(w_clf, w_feat, w_logit): 0.3/0.5/0.2 ramping linearly to 0.4/0.4/0.2 over epochs 0-10."""
    t = _ramp(epoch, 0, r.weights_ramp_epochs)
    return tuple(a + d * t for a, d in zip(r.weights_start, r.weights_change))  # type: ignore[return-value]


def distill_temperature(epoch: int, r: Phase2Recipe = P2) -> float:
    """T: 2.5 for epochs < 5, then 0.1 lower per epoch, 1.0 from epoch 20."""
    start, floor, after, step = r.temperature
    return max(floor, start - step * max(0, epoch - after))


def focal_margin(epoch: int, r: Phase2Recipe = P2) -> float:
    """Margin m of the focal-margin BCE: 0.3 until epoch 5, linear to 1.2 at epoch 20."""
    start, rise, first, last = r.margin
    return start + rise * _ramp(epoch, first, last)


# ------------------------------------------------------------------------------- phase 1 terms

def triplet_loss(a: Tensor, p: Tensor, n: Tensor, margin: float = P1.triplet_margin) -> Tensor:
    """mean(relu(||a - p|| - ||a - n|| + margin)), L2 distances."""
    return F.triplet_margin_loss(a, p, n, margin=margin, p=2.0)


def norm_penalty(*embeddings: Tensor) -> Tensor:
    """Mean L2 norm over all the given embeddings (rows)."""
    return torch.cat([e.norm(dim=1) for e in embeddings]).mean()


def cosine_penalty(a: Tensor, n: Tensor, scale: float, r: Phase1Recipe = P1) -> Tensor:
    """``scale * relu(mean cos(a, n) + 0.1) * 0.5``: pushes anchors away from negatives' direction."""
    return scale * F.relu(F.cosine_similarity(a, n, dim=1).mean() + r.cos_offset) * r.cos_factor


@dataclass
class LossTerms:
    total: Tensor
    parts: dict[str, float]
    """Detached values of every term (for logs and progress bars)."""


def phase1_loss(a: Tensor, p: Tensor, n: Tensor, logit: Tensor, y: Tensor, epoch: int, r: Phase1Recipe = P1
                ) -> LossTerms:
    """Triplet + BCE(classifier(a), y) + 0.01 * mean norms + cosine penalty."""
    bce = F.binary_cross_entropy_with_logits(logit.float(), y.float())
    tri = triplet_loss(a.float(), p.float(), n.float(), r.triplet_margin)
    norm = norm_penalty(a.float(), p.float(), n.float())
    cos = cosine_penalty(a.float(), n.float(), cos_penalty_scale(epoch, r), r)
    total = tri + bce + r.norm_weight * norm + cos
    return LossTerms(total, {"triplet": tri.item(), "bce": bce.item(), "norm": norm.item(), "cos": cos.item()})


# ------------------------------------------------------------------------------- phase 2 terms

def focal_margin_bce(logit: Tensor, y: Tensor, margin: float, gamma: float = 2.0) -> Tensor:
    """BCE on the logit shifted by -m (positives) / +m (negatives), times (1 - p_t)^gamma."""
    y = y.float()
    shifted = logit.float() - margin * (2 * y - 1)
    bce = F.binary_cross_entropy_with_logits(shifted, y, reduction="none")
    p = torch.sigmoid(shifted)
    p_t = y * p + (1 - y) * (1 - p)
    return ((1 - p_t) ** gamma * bce).mean()


def feature_kd(student: Tensor, teacher: Tensor) -> Tensor:
    """MSE between the L2-normalised pooled vectors."""
    return F.mse_loss(F.normalize(student.float(), dim=1), F.normalize(teacher.float(), dim=1))


def logit_kd(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """T^2 * BCE(student / T, sigmoid(teacher / T))."""
    t = temperature
    target = torch.sigmoid(teacher.float() / t)
    return t * t * F.binary_cross_entropy_with_logits(student.float() / t, target)


def distill_loss(s_logit: Tensor, s_pooled: Tensor, y: Tensor, epoch: int, r: Phase2Recipe = P2, *,
                 label_only: bool = False,
                 t_logit: Tensor | None = None, t_pooled: Tensor | None = None, rows: Tensor | None = None,
                 use_feature: bool = True, use_logit: bool = True) -> LossTerms:
    """Phase-2 loss.

    ``label_only`` (no distillation ablation): the focal-margin BCE alone. Otherwise
    ``w_clf * focal-margin BCE`` over all rows plus ``w_feat * feature KD + w_logit * logit KD``
    over ``rows`` (the rows that have teacher outputs; None = all; no teacher outputs in this
    batch = no KD terms), with the weights of :func:`distill_weights`.
    """
    clf = focal_margin_bce(s_logit, y, focal_margin(epoch, r), r.focal_gamma)
    if label_only:
        return LossTerms(clf, {"clf": clf.item()})
    w_clf, w_feat, w_logit = distill_weights(epoch, r)
    total, parts = w_clf * clf, {"clf": clf.item()}
    if t_logit is None or not len(t_logit):
        return LossTerms(total, parts)
    if rows is not None:
        s_logit, s_pooled = s_logit[rows], s_pooled[rows]
    if use_feature:
        feat = feature_kd(s_pooled, t_pooled)
        total = total + w_feat * feat
        parts["feat"] = feat.item()
    if use_logit:
        kd = logit_kd(s_logit, t_logit, distill_temperature(epoch, r))
        total = total + w_logit * kd
        parts["logit_kd"] = kd.item()
    return LossTerms(total, parts)
