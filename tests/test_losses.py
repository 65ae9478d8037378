"""Hand-worked checks of the angular-margin losses on 2-D embeddings at known angles."""

import math

import numpy as np
import pytest
import torch

from asd_utils.training.losses import (
    AdaCos,
    ArcFace,
    SubCenterArcFace,
    SubClusterAdaCos,
    build_loss,
    fixed_adacos_scale,
    soft_targets,
)

DEG = math.pi / 180


def unit(*degrees):
    return torch.tensor([[math.cos(d * DEG), math.sin(d * DEG)] for d in degrees], dtype=torch.float32)


def set_centres(loss, *degrees, scale=1.0):
    with torch.no_grad():
        loss.centres.copy_(unit(*degrees) * scale)
    return loss


def logsumexp(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def test_fixed_scale_formula():
    assert fixed_adacos_scale(4) == pytest.approx(math.sqrt(2) * math.log(3))
    assert fixed_adacos_scale(2) == pytest.approx(math.sqrt(2) * math.log(2))  # floored
    assert AdaCos(10, 3).scale.item() == pytest.approx(math.sqrt(2) * math.log(9), rel=1e-6)
    assert SubClusterAdaCos(3, 4, 2).scale.item() == pytest.approx(math.sqrt(2) * math.log(11), rel=1e-6)


def test_adacos_fixed_scale_hand_value():
    loss = set_centres(AdaCos(4, 2, dynamic=False), 0, 90, 180, 270, scale=3.0)  # centre norm irrelevant
    emb = unit(30) * 5.0
    s = math.sqrt(2) * math.log(3)
    z = [s * math.cos(a * DEG) for a in (30, 60, 150, 240)]
    expected = -(z[0] - logsumexp(z))
    assert loss(emb, torch.tensor([0])).item() == pytest.approx(expected, abs=1e-6)
    np.testing.assert_allclose(loss.logits(emb).detach().numpy()[0], [math.cos(a * DEG) for a in (30, 60, 150, 240)],
                               atol=1e-6)


def test_adacos_dynamic_scale_hand_value():
    loss = set_centres(AdaCos(4, 2, dynamic=True), 0, 90, 180, 270)
    angles, labels = (10, 40, 100), (0, 0, 1)
    emb = unit(*angles)
    s0 = math.sqrt(2) * math.log(3)
    cos = np.array([[math.cos((a - c) * DEG) for c in (0, 90, 180, 270)] for a in angles])
    b_avg = np.mean([sum(math.exp(s0 * cos[i, k]) for k in range(4) if k != labels[i]) for i in range(3)])
    target_angles = [10, 40, 10]
    theta_med = float(np.median(target_angles)) * DEG
    s1 = math.log(b_avg) / math.cos(min(math.pi / 4, theta_med))
    value = loss(emb, torch.tensor(labels)).item()
    assert loss.scale.item() == pytest.approx(s1, abs=1e-5)
    expected = np.mean([-(s1 * cos[i, labels[i]] - logsumexp(list(s1 * cos[i]))) for i in range(3)])
    assert value == pytest.approx(expected, abs=1e-5)


def test_adacos_dynamic_scale_uses_numpy_median_and_pi_over_4_cap():
    loss = set_centres(AdaCos(3, 2), 0, 120, 240)
    emb = unit(50, 80)  # target angles 50 and 80 degrees (even count -> mean of the two = 65 > 45)
    s0 = math.sqrt(2) * math.log(2)
    cos = np.array([[math.cos((a - c) * DEG) for c in (0, 120, 240)] for a in (50, 80)])
    b_avg = np.mean([math.exp(s0 * cos[i, 1]) + math.exp(s0 * cos[i, 2]) for i in range(2)])
    loss(emb, torch.tensor([0, 0]))
    assert loss.scale.item() == pytest.approx(math.log(b_avg) / math.cos(math.pi / 4), abs=1e-5)


def test_dynamic_scale_is_clamped_at_min_scale():
    loss = set_centres(AdaCos(3, 2), 0, 120, 240)  # min_scale=0 by default
    loss(unit(60, 5, 250), torch.tensor([[0.25, 0.75, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    assert loss.scale.item() == 0.0  # log(B_avg) < 0 here
    clamped = set_centres(AdaCos(3, 2, min_scale=1.5), 0, 120, 240)
    clamped(unit(60, 5, 250), torch.tensor([1, 0, 2]))
    assert clamped.scale.item() == 1.5


def test_adacos_scale_fixed_in_eval_and_when_not_dynamic():
    loss = set_centres(AdaCos(4, 2), 0, 90, 180, 270)
    before = loss.scale.item()
    loss.eval()
    loss(unit(10, 20), torch.tensor([0, 1]))
    assert loss.scale.item() == before
    static = AdaCos(4, 2, scale=7.0, dynamic=False)
    static(unit(10, 20), torch.tensor([0, 1]))
    assert static.scale.item() == 7.0


def test_adacos_soft_labels_are_weighted_cross_entropy():
    loss = set_centres(AdaCos(4, 2, dynamic=False), 0, 90, 180, 270)
    emb = unit(30)
    soft = torch.tensor([[0.3, 0.7, 0.0, 0.0]])
    mixed = loss(emb, soft).item()
    expected = 0.3 * loss(emb, torch.tensor([0])).item() + 0.7 * loss(emb, torch.tensor([1])).item()
    assert mixed == pytest.approx(expected, abs=1e-6)


def test_adacos_dynamic_with_soft_labels_hand_value():
    loss = set_centres(AdaCos(3, 2, min_scale=-math.inf), 0, 120, 240)  # raw formula (can be < 0 here)
    soft = torch.tensor([[0.25, 0.75, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    angles = (60, 5, 250)
    loss(unit(*angles), soft)
    s0 = math.sqrt(2) * math.log(2)
    cos = np.array([[math.cos((a - c) * DEG) for c in (0, 120, 240)] for a in angles])
    y = soft.numpy()
    b_avg = np.mean([sum(math.exp(s0 * cos[i, k]) for k in range(3) if y[i, k] == 0) for i in range(3)])
    theta = [0.25 * 60 + 0.75 * 60, 5, 10]
    expected = math.log(b_avg) / math.cos(min(math.pi / 4, float(np.median(theta)) * DEG))
    assert loss.scale.item() == pytest.approx(expected, abs=1e-5)


def subcluster_loss(**kwargs):
    # class 0: centres at 0 and 45 degrees; class 1: centres at 180 and 270 degrees
    return set_centres(SubClusterAdaCos(2, 2, 2, **kwargs), 0, 45, 180, 270)


def test_subcluster_adacos_hand_value_and_logits():
    loss = subcluster_loss(dynamic=False)
    emb = unit(20)
    s = math.sqrt(2) * math.log(3)
    z = [s * math.cos(d * DEG) for d in (20, 25, 160, 250)]
    p0 = (math.exp(z[0]) + math.exp(z[1])) / sum(math.exp(v) for v in z)
    assert loss(emb, torch.tensor([0])).item() == pytest.approx(-math.log(p0), abs=1e-6)
    assert loss(emb, torch.tensor([1])).item() == pytest.approx(-math.log(1 - p0), abs=1e-6)
    np.testing.assert_allclose(loss.logits(emb).detach().numpy()[0], [math.cos(20 * DEG), math.cos(110 * DEG)],
                               atol=1e-6)
    probs = loss.class_probabilities(emb).detach().numpy()[0]
    np.testing.assert_allclose(probs, [p0, 1 - p0], atol=1e-6)
    assert loss.centre_cosines(emb).shape == (1, 4)
    soft = loss(emb, torch.tensor([[0.4, 0.6]])).item()
    assert soft == pytest.approx(-(0.4 * math.log(p0) + 0.6 * math.log(1 - p0)), abs=1e-6)


@pytest.mark.parametrize("b_avg", ["non_target", "all"])
def test_subcluster_adacos_dynamic_scale_hand_value(b_avg):
    loss = subcluster_loss(b_avg=b_avg, min_scale=-math.inf)  # raw formula, no clamping
    angles, labels = (20, 30, 200), (0, 0, 1)
    centres = (0, 45, 180, 270)
    s0 = math.sqrt(2) * math.log(3)
    cos = np.array([[math.cos((a - c) * DEG) for c in centres] for a in angles])
    owner = [0, 0, 1, 1]
    sums = []
    for i in range(3):
        ks = [k for k in range(4) if b_avg == "all" or owner[k] != labels[i]]
        sums.append(sum(math.exp(s0 * cos[i, k]) for k in ks))
    theta = [20, 15, 20]  # angle to the closest centre of the target class
    s1 = math.log(np.mean(sums)) / math.cos(min(math.pi / 4, float(np.median(theta)) * DEG))
    value = loss(unit(*angles), torch.tensor(labels)).item()
    assert loss.scale.item() == pytest.approx(s1, abs=1e-5)
    expected = []
    for i in range(3):
        z = list(s1 * cos[i])
        expected.append(-(logsumexp(z[2 * labels[i]: 2 * labels[i] + 2]) - logsumexp(z)))
    assert value == pytest.approx(float(np.mean(expected)), abs=1e-5)


def test_arcface_hand_values():
    loss = set_centres(ArcFace(3, 2, scale=30.0, margin=0.5), 0, 120, 240)
    s, m = 30.0, 0.5
    # regular case: theta = 30 degrees
    emb = unit(30)
    z = [s * math.cos(30 * DEG + m), s * math.cos(90 * DEG), s * math.cos(210 * DEG)]
    assert loss(emb, torch.tensor([0])).item() == pytest.approx(-(z[0] - logsumexp(z)), abs=1e-5)
    # theta + m > pi: linear fall-back cos(theta) - m * sin(pi - m)
    emb = unit(170)
    phi = math.cos(170 * DEG) - m * math.sin(math.pi - m)
    z = [s * phi, s * math.cos(50 * DEG), s * math.cos(70 * DEG)]
    assert loss(emb, torch.tensor([0])).item() == pytest.approx(-(z[0] - logsumexp(z)), abs=1e-4)
    np.testing.assert_allclose(loss.logits(emb).detach().numpy()[0],
                               [math.cos(170 * DEG), math.cos(50 * DEG), math.cos(70 * DEG)], atol=1e-6)


def test_arcface_easy_margin():
    loss = set_centres(ArcFace(3, 2, scale=10.0, margin=0.3, easy_margin=True), 0, 120, 240)
    emb = unit(100)  # cos < 0: no margin
    z = [10 * math.cos(100 * DEG), 10 * math.cos(20 * DEG), 10 * math.cos(140 * DEG)]
    assert loss(emb, torch.tensor([0])).item() == pytest.approx(-(z[0] - logsumexp(z)), abs=1e-5)
    emb = unit(40)  # cos > 0: margin
    z = [10 * math.cos(40 * DEG + 0.3), 10 * math.cos(80 * DEG), 10 * math.cos(200 * DEG)]
    assert loss(emb, torch.tensor([0])).item() == pytest.approx(-(z[0] - logsumexp(z)), abs=1e-5)


def test_arcface_soft_labels_mix_the_per_class_losses():
    loss = set_centres(ArcFace(3, 2, scale=16.0, margin=0.2), 0, 120, 240)
    emb = unit(50, 190)
    soft = torch.tensor([[0.4, 0.6, 0.0], [0.0, 0.1, 0.9]])
    a = loss(emb[:1], torch.tensor([0])).item() * 0.4 + loss(emb[:1], torch.tensor([1])).item() * 0.6
    b = loss(emb[1:], torch.tensor([1])).item() * 0.1 + loss(emb[1:], torch.tensor([2])).item() * 0.9
    assert loss(emb, soft).item() == pytest.approx((a + b) / 2, abs=1e-5)


def test_subcenter_arcface_takes_max_over_subcentres():
    loss = set_centres(SubCenterArcFace(2, 2, k=2, scale=20.0, margin=0.4), 0, 60, 170, 250)
    emb = unit(50)  # class 0: closest sub-centre 60 deg (10 away); class 1: 170 (120 away)
    np.testing.assert_allclose(loss.logits(emb).detach().numpy()[0], [math.cos(10 * DEG), math.cos(120 * DEG)],
                               atol=1e-6)
    z = [20 * math.cos(10 * DEG + 0.4), 20 * math.cos(120 * DEG)]
    assert loss(emb, torch.tensor([0])).item() == pytest.approx(-(z[0] - logsumexp(z)), abs=1e-5)
    assert loss.centre_cosines(emb).shape == (1, 4)


@pytest.mark.parametrize("name,kwargs", [
    ("adacos", {"n_classes": 5, "dim": 8}),
    ("subcluster_adacos", {"n_classes": 5, "n_subclusters": 3, "dim": 8, "trainable_centres": True}),
    ("arcface", {"n_classes": 5, "dim": 8}),
    ("subcenter_arcface", {"n_classes": 5, "dim": 8, "k": 3}),
])
def test_gradients_reach_embeddings_and_trainable_centres(name, kwargs):
    torch.manual_seed(0)
    loss = build_loss(name, **kwargs)
    emb = torch.randn(6, 8, requires_grad=True)
    value = loss(emb, torch.tensor([0, 1, 2, 3, 4, 0]))
    value.backward()
    assert value.dim() == 0 and torch.isfinite(value)
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    assert loss.centres.grad is not None and loss.centres.grad.abs().sum() > 0
    assert loss.logits(emb).shape == (6, 5)


def test_subcluster_centres_fixed_by_default_and_scale_checkpointed():
    loss = SubClusterAdaCos(3, 2, 4)
    assert not loss.centres.requires_grad
    assert "scale" in loss.state_dict() and "centres" in loss.state_dict()


def test_bad_labels_raise():
    loss = AdaCos(3, 2)
    with pytest.raises(ValueError, match="out of range"):
        loss(unit(0), torch.tensor([3]))
    with pytest.raises(ValueError, match="columns"):
        loss(unit(0), torch.tensor([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="embeddings"):
        loss(torch.zeros(1, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("cosface")
    assert soft_targets(torch.tensor([1]), 3).tolist() == [[0.0, 1.0, 0.0]]
