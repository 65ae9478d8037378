"""OS-SCL losses (asd_utils.training.losses): SupCon, ArcFace margin logits, mixup cross-entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asd_utils.training.losses import (
    SubCenterArcFace,
    SupConLoss,
    arcface_margin_logits,
    mixup_cross_entropy,
    os_scl_loss,
)

# two pairs of identical unit vectors, orthogonal between the pairs
FEATURES = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])


def test_supcon_equals_hand_computed_value_on_four_samples():
    # anchor 1: positive 2 (dot 1), negatives 3, 4 (dot 0); every anchor is alike:
    # loss = -(1/t - log(e^{1/t} + 2)) with t = t_base = 1: log(e + 2) - 1 = 0.551444...
    loss = SupConLoss(temperature=1.0, base_temperature=1.0)(FEATURES, torch.tensor([0, 0, 1, 1]))
    assert loss.item() == pytest.approx(math.log(math.e + 2.0) - 1.0, abs=1e-6)
    assert loss.item() == pytest.approx(0.5514447, abs=1e-6)
    # t = 0.5: log(e^2 + 2) - 2 = 0.239545...
    loss = SupConLoss(temperature=0.5, base_temperature=0.5)(FEATURES, torch.tensor([0, 0, 1, 1]))
    assert loss.item() == pytest.approx(0.2395448, abs=1e-6)


def test_supcon_temperature_ratio_and_anchors_without_positives():
    # the loss is scaled by t / t_base (report 003: t = 0.04 with the reference code's base 0.07)
    labels = torch.tensor([0, 0, 1, 1])
    loss = SupConLoss(0.5, 0.07)(FEATURES, labels).item()
    assert loss == pytest.approx((0.5 / 0.07) * (math.log(math.exp(2.0) + 2.0) - 2.0), rel=1e-5)
    # t = 0.04: the positive (dot 1) dominates the negatives (dot 0) by e^25, the loss is ~0
    assert SupConLoss(0.04, 0.07)(FEATURES, labels).item() == pytest.approx(0.0, abs=1e-9)
    # samples 3 and 4 have no positive: they contribute 0 but still count in the mean over 4 anchors
    loss = SupConLoss(1.0, 1.0)(FEATURES, torch.tensor([0, 0, 1, 2])).item()
    assert loss == pytest.approx(2 * (math.log(math.e + 2.0) - 1.0) / 4, abs=1e-6)


def test_supcon_matches_a_loop_implementation_and_normalises_features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5))
    labels = np.array([0, 1, 0, 2, 1, 0])
    t, tb = 0.3, 0.07
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    total = 0.0
    for i in range(6):
        others = [a for a in range(6) if a != i]
        denom = sum(math.exp(z[i] @ z[a] / t) for a in others)
        pos = [p for p in others if labels[p] == labels[i]]
        if pos:
            total += -(t / tb) * np.mean([z[i] @ z[p] / t - math.log(denom) for p in pos])
    got = SupConLoss(t, tb)(torch.tensor(3.0 * x, dtype=torch.float32), torch.tensor(labels))
    assert got.item() == pytest.approx(total / 6, rel=1e-5)


def _head():
    torch.manual_seed(0)
    return SubCenterArcFace(n_classes=3, dim=4, k=2, scale=30.0, margin=0.2)


def test_arcface_margin_logits_follow_the_formula():
    head = _head()
    emb = torch.randn(5, 4)
    labels = torch.tensor([0, 2, 1, 1, 0])
    got = arcface_margin_logits(head, emb, labels)
    e = torch.nn.functional.normalize(emb, dim=1).numpy()
    c = torch.nn.functional.normalize(head.centres.detach(), dim=1).numpy()
    cos = (e @ c.T).reshape(5, 3, 2).max(axis=2)  # max over the sub-centres of each class
    expected = 30.0 * cos
    for i, y in enumerate(labels.tolist()):
        theta = math.acos(cos[i, y])
        expected[i, y] = 30.0 * (math.cos(theta + 0.2) if theta + 0.2 <= math.pi else cos[i, y] - 0.2 * math.sin(0.2))
    np.testing.assert_allclose(got.detach().numpy(), expected, atol=1e-4)


def test_mixup_cross_entropy_on_arcface_logits_equals_its_formula():
    head = _head()
    emb = torch.randn(6, 4)
    y_a = torch.tensor([0, 1, 2, 0, 1, 2])
    y_b = torch.tensor([2, 2, 0, 1, 1, 0])
    lam = 0.3
    logits = arcface_margin_logits(head, emb, y_a)
    got = mixup_cross_entropy(logits, y_a, y_b, lam)
    z = logits.detach().double().numpy()
    log_p = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    ce_a = -log_p[np.arange(6), y_a.numpy()].mean()
    ce_b = -log_p[np.arange(6), y_b.numpy()].mean()
    assert got.item() == pytest.approx(lam * ce_a + (1 - lam) * ce_b, rel=1e-6)
    ce = torch.nn.functional.cross_entropy
    assert got.item() == pytest.approx((lam * ce(logits, y_a) + (1 - lam) * ce(logits, y_b)).item(), rel=1e-6)
    # a per-sample lam that is constant equals the scalar one
    assert mixup_cross_entropy(logits, y_a, y_b, torch.full((6,), lam)).item() == pytest.approx(got.item(), rel=1e-6)
    # lam = 1 is plain ArcFace cross-entropy
    assert mixup_cross_entropy(logits, y_a, y_b, 1.0).item() == pytest.approx(ce(logits, y_a).item(), rel=1e-6)


def test_os_scl_loss_is_mixup_ce_plus_weighted_supcon():
    head = _head()
    emb = torch.randn(6, 4, requires_grad=True)
    y_a = torch.tensor([0, 1, 2, 0, 1, 2])
    y_b = torch.tensor([2, 2, 0, 1, 1, 0])
    sup = SupConLoss(0.04)
    total, ce, sc = os_scl_loss(head, sup, emb, y_a, y_b, 0.7, supcon_weight=0.5)
    assert ce.item() == pytest.approx(mixup_cross_entropy(arcface_margin_logits(head, emb, y_a), y_a, y_b, 0.7).item())
    assert sc.item() == pytest.approx(sup(emb, y_a).item())
    assert total.item() == pytest.approx(ce.item() + 0.5 * sc.item(), rel=1e-6)
    total.backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
    assert head.centres.grad is not None


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="temperatures"):
        SupConLoss(0.0)
    with pytest.raises(ValueError, match="labels"):
        SupConLoss()(torch.randn(4, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="int64"):
        arcface_margin_logits(_head(), torch.randn(2, 4), torch.tensor([0.0, 1.0]))
