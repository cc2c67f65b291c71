"""Losses against hand-computed values on tiny tensors, gradients, and the schedules."""
import math

import pytest
import torch
import torch.nn.functional as F

from bids_amyloid.train import losses as L


def test_triplet_norm_and_cosine_by_hand():
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[3.0, 4.0], [1.0, 0.0]])  # d(a,p) = 5, 0
    n = torch.tensor([[0.0, 1.0], [1.0, 2.0]])  # d(a,n) = 1, 2
    # relu(5 - 1 + 1) = 5, relu(0 - 2 + 1) = 0 -> mean 2.5
    assert L.triplet_loss(a, p, n).item() == pytest.approx(2.5, abs=1e-4)
    # norms: a 0, 1; p 5, 1; n 1, sqrt(5)
    assert L.norm_penalty(a, p, n).item() == pytest.approx((0 + 1 + 5 + 1 + 1 + math.sqrt(5)) / 6, abs=1e-6)
    a2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    n2 = torch.tensor([[1.0, 1.0], [0.0, -1.0]])  # cos = 1/sqrt2, -1 -> mean -0.1464
    expected = 0.5 * 0.5 * max(0.0, (1 / math.sqrt(2) - 1) / 2 + 0.1)
    assert L.cosine_penalty(a2, n2, scale=0.5).item() == pytest.approx(expected, abs=1e-6)
    n3 = torch.tensor([[1.0, 0.1], [0.1, 1.0]])  # nearly parallel: cos ~ 0.995
    cos = F.cosine_similarity(a2, n3, dim=1).mean().item()
    assert L.cosine_penalty(a2, n3, scale=1.0).item() == pytest.approx((cos + 0.1) * 0.5, abs=1e-6)


def test_cosine_penalty_has_gradient():
    a = torch.tensor([[1.0, 0.2], [0.3, 1.0]], requires_grad=True)
    n = torch.tensor([[1.0, 0.1], [0.1, 1.0]], requires_grad=True)
    L.cosine_penalty(a, n, scale=1.0).backward()
    assert a.grad is not None and a.grad.abs().sum() > 0 and n.grad.abs().sum() > 0


def test_phase1_loss_sums_terms_with_gradient():
    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randn(4, 8, generator=g, requires_grad=True) for _ in range(3))
    logit, y = torch.randn(4, generator=g, requires_grad=True), torch.tensor([0.0, 1.0, 1.0, 0.0])
    terms = L.phase1_loss(a, p, n, logit, y, epoch=5)
    expected = (L.triplet_loss(a, p, n) + F.binary_cross_entropy_with_logits(logit, y)
                + 0.01 * L.norm_penalty(a, p, n) + L.cosine_penalty(a, n, L.cos_penalty_scale(5)))
    assert terms.total.item() == pytest.approx(expected.item(), rel=1e-6)
    terms.total.backward()
    assert all(t.grad is not None for t in (a, p, n, logit))


def test_focal_margin_bce_by_hand():
    logit, y, m = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0]), 0.5
    # positive: z' = 1.5, p = sig(1.5), loss = (1-p)^2 * -log p ; negative: z' = -0.5, p_t = 1 - sig(-0.5)
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    pos = (1 - s(1.5)) ** 2 * -math.log(s(1.5))
    neg = (1 - (1 - s(-0.5))) ** 2 * -math.log(1 - s(-0.5))
    assert L.focal_margin_bce(logit, y, m).item() == pytest.approx((pos + neg) / 2, rel=1e-5)


def test_feature_and_logit_kd_by_hand():
    s, t = torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 2.0]])
    # normalised: (0.6, 0.8) vs (0, 1): mse = (0.36 + 0.04) / 2
    assert L.feature_kd(s, t).item() == pytest.approx(0.2, abs=1e-6)
    sl, tl, temp = torch.tensor([1.0]), torch.tensor([3.0]), 2.0
    q = 1 / (1 + math.exp(-1.5))
    p = 1 / (1 + math.exp(-0.5))
    bce = -(q * math.log(p) + (1 - q) * math.log(1 - p))
    assert L.logit_kd(sl, tl, temp).item() == pytest.approx(4 * bce, rel=1e-5)


def test_distill_loss_weights_rows_and_ablations():
    g = torch.Generator().manual_seed(1)
    s_logit, s_pooled = torch.randn(3, generator=g), torch.randn(3, 4, generator=g)
    t_logit, t_pooled = torch.randn(2, generator=g), torch.randn(2, 4, generator=g)
    y, rows, epoch = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0, 2]), 4
    w = L.distill_weights(epoch)
    clf = L.focal_margin_bce(s_logit, y, L.focal_margin(epoch))
    full = L.distill_loss(s_logit, s_pooled, y, epoch, t_logit=t_logit, t_pooled=t_pooled, rows=rows)
    expected = (w[0] * clf + w[1] * L.feature_kd(s_pooled[rows], t_pooled)
                + w[2] * L.logit_kd(s_logit[rows], t_logit, L.distill_temperature(epoch)))
    assert full.total.item() == pytest.approx(expected.item(), rel=1e-6)
    no_feat = L.distill_loss(s_logit, s_pooled, y, epoch, t_logit=t_logit, t_pooled=t_pooled, rows=rows,
                             use_feature=False)
    assert "feat" not in no_feat.parts and no_feat.total < full.total + 1e-9
    label_only = L.distill_loss(s_logit, s_pooled, y, epoch, label_only=True)
    assert label_only.total.item() == pytest.approx(clf.item()) and set(label_only.parts) == {"clf"}


def test_schedules():
    assert [L.cos_penalty_scale(e) for e in (0, 3, 4, 12, 20)] == pytest.approx([0.1, 0.1, 0.2, 1.0, 1.0])
    assert L.distill_weights(0) == pytest.approx((0.3, 0.5, 0.2))
    assert L.distill_weights(5) == pytest.approx((0.35, 0.45, 0.2))
    assert L.distill_weights(10) == L.distill_weights(50) == pytest.approx((0.4, 0.4, 0.2))
    assert [L.distill_temperature(e) for e in (0, 4, 5, 6, 15, 20, 30)] == pytest.approx(
        [2.5, 2.5, 2.5, 2.4, 1.5, 1.0, 1.0])
    assert [L.focal_margin(e) for e in (0, 5, 12.5, 20, 40)] == pytest.approx([0.3, 0.3, 0.75, 1.2, 1.2])
