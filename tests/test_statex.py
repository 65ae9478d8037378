"""StatEx, FeatEx, the 3C / 9C label expansion and the self-supervised heads (asd_utils.training.statex)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asd_utils.training.losses import SubClusterAdaCos
from asd_utils.training.statex import (
    SelfSupervisedHeads,
    exchange_targets,
    featex,
    featex_targets,
    pack_ssl_outputs,
    statex,
    statex_targets,
    temporal_statistics,
    unpack_ssl_outputs,
)


def _hand_batch() -> torch.Tensor:
    # (B=3, F=4, T=2): clearly different per-frame means and spreads
    a = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    b = torch.tensor([[0.0, 5.0], [0.0, 5.0], [6.0, 5.0], [6.0, 9.0]])
    c = torch.tensor([[-1.0, 2.0], [1.0, 4.0], [-1.0, 6.0], [1.0, 8.0]])
    return torch.stack([a, b, c])


def test_temporal_statistics_are_per_frame_over_frequency():
    mean, std = temporal_statistics(_hand_batch())
    assert mean.shape == (3, 1, 2) and std.shape == (3, 1, 2)
    np.testing.assert_allclose(mean[0, 0].numpy(), [2.5, 25.0])
    np.testing.assert_allclose(std[0, 0].numpy(), [np.std([1, 2, 3, 4]), np.std([10, 20, 30, 40])], rtol=1e-6)


def test_statex_gives_each_exchanged_clip_its_partners_temporal_mean_and_std():
    x = _hand_batch()
    mask = torch.tensor([True, False, True])
    out, used = statex(x, 0.5, mask=mask)
    assert used.tolist() == [True, False, True]
    mean_in, std_in = temporal_statistics(x)
    mean_out, std_out = temporal_statistics(out)
    # exchanged clip 0 carries clip 2's statistics (batch-reversed partner) and vice versa
    for i, partner in ((0, 2), (2, 0)):
        np.testing.assert_allclose(mean_out[i].numpy(), mean_in[partner].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(std_out[i].numpy(), std_in[partner].numpy(), rtol=1e-5, atol=1e-5)
        # the normalised shape of the clip itself is kept
        z_in = (x[i] - mean_in[i]) / std_in[i]
        z_out = (out[i] - mean_out[i]) / std_out[i]
        np.testing.assert_allclose(z_out.numpy(), z_in.numpy(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1], x[1])  # not exchanged: untouched


def test_statex_hand_computed_values():
    x = _hand_batch()
    out, _ = statex(x, 1.0)
    # clip 1 (middle) is its own partner for B = 3 -> unchanged up to rounding
    torch.testing.assert_close(out[1], x[1], rtol=1e-5, atol=1e-5)
    # clip 0, frame 0: values 1..4 (mean 2.5, std sqrt(1.25)) -> partner clip 2 frame 0 (mean 0, std 1)
    expected = (torch.tensor([1.0, 2.0, 3.0, 4.0]) - 2.5) / np.sqrt(1.25) * 1.0 + 0.0
    torch.testing.assert_close(out[0, :, 0], expected, rtol=1e-5, atol=1e-5)


def test_statex_probability_zero_and_one():
    x = torch.randn(6, 5, 7)
    out, used = statex(x, 0.0)
    assert not used.any() and torch.equal(out, x)
    _, used = statex(x, 1.0)
    assert used.all()
    g = torch.Generator().manual_seed(0)
    frac = np.mean([statex(x, 0.5, generator=g)[1].float().mean().item() for _ in range(200)])
    assert 0.4 < frac < 0.6


def test_statex_labels_equal_the_formula():
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7]])  # the last row is a mixup target
    mask = torch.tensor([False, True, True])
    t = statex_targets(y, mask)
    assert t.shape == (3, 6)
    np.testing.assert_allclose(t[0].numpy(), [1, 0, 0, 0, 0, 0])  # unchanged: [y, 0, 0]
    # exchanged: [0, y_i / 2, y_partner / 2], partner of 1 is 1 (B = 3), partner of 2 is 0
    np.testing.assert_allclose(t[1].numpy(), [0, 0, 0, 0.5, 0, 0.5])
    np.testing.assert_allclose(t[2].numpy(), [0, 0, 0.15, 0.35, 0.5, 0.0])
    np.testing.assert_allclose(t.sum(dim=1).numpy(), [1, 1, 1], rtol=1e-6)


def test_label_tensors_have_3c_and_9c_columns():
    c = 5
    y = torch.nn.functional.one_hot(torch.tensor([0, 3, 4, 1]), c).float()
    t3 = statex_targets(y, torch.tensor([True, False, True, False]))
    t9 = featex_targets(t3, torch.tensor([False, True, True, False]))
    assert t3.shape == (4, 3 * c) and t9.shape == (4, 9 * c)
    np.testing.assert_allclose(t9.sum(dim=1).numpy(), np.ones(4), rtol=1e-6)
    # row 0: StatEx exchanged with row 3, FeatEx kept -> first third of 9C = its 3C target
    torch.testing.assert_close(t9[0, :3 * c], t3[0])
    # row 1: FeatEx exchanged with row 2 -> [0, t3_1 / 2, t3_2 / 2]
    torch.testing.assert_close(t9[1], torch.cat([torch.zeros(3 * c), t3[1] / 2, t3[2] / 2]))


def test_featex_swaps_exactly_the_spectrogram_branch_embedding():
    spec = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    mask = torch.tensor([True, False, False, True])
    out, used = featex(spec, 0.5, mask=mask)
    torch.testing.assert_close(out[0], spec[3])
    torch.testing.assert_close(out[3], spec[0])
    torch.testing.assert_close(out[1:3], spec[1:3])
    assert used.tolist() == mask.tolist()


def test_model_featex_keeps_the_fft_embedding_and_swaps_the_spectrogram_one():
    from asd_utils.models.seresnet import SEResNetFFTModel

    torch.manual_seed(0)
    model = SEResNetFFTModel(8000, n_mels=16, width=0.125, emb_dim=8, statex_prob=0.0, featex_prob=1.0)
    model.train()
    waves = torch.randn(4, 8000)
    packed = model(waves)
    emb, emb_fx, s_mask, f_mask = unpack_ssl_outputs(packed, model.dim)
    assert f_mask.all() and not s_mask.any()
    d = model.emb_dim
    torch.testing.assert_close(emb_fx[:, :d], emb[:, :d])          # |FFT| part unchanged
    torch.testing.assert_close(emb_fx[:, d:], emb[:, d:].flip(0))  # spectrogram part from the partner


def test_pack_unpack_roundtrip():
    e, f = torch.randn(3, 4), torch.randn(3, 4)
    s, m = torch.tensor([True, False, True]), torch.tensor([False, False, True])
    out = unpack_ssl_outputs(pack_ssl_outputs(e, f, s, m), 4)
    torch.testing.assert_close(out[0], e)
    torch.testing.assert_close(out[1], f)
    assert out[2].tolist() == s.tolist() and out[3].tolist() == m.tolist()
    with pytest.raises(ValueError):
        unpack_ssl_outputs(torch.randn(3, 9), 4)


def test_heads_loss_equals_weighted_sum_of_head_losses():
    torch.manual_seed(0)
    c, d = 3, 6
    heads = SelfSupervisedHeads(c, d, n_subclusters=2, loss_weights=(1.0, 0.5, 2.0))
    for h in heads.heads:
        h.dynamic = False
    assert [h.n_classes for h in heads.heads] == [c, 3 * c, 9 * c]
    assert [h.centres.requires_grad for h in heads.heads] == [False, True, True]
    e, f = torch.randn(4, d), torch.randn(4, d)
    s, m = torch.tensor([True, False, True, False]), torch.tensor([False, True, True, False])
    y = torch.tensor([0, 2, 1, 1])
    loss = heads(pack_ssl_outputs(e, f, s, m), y)
    yy = torch.nn.functional.one_hot(y, c).float()
    t3 = exchange_targets(yy, s)
    expected = heads.heads[0](e, yy) + 0.5 * heads.heads[1](e, t3) + 2.0 * heads.heads[2](f, exchange_targets(t3, m))
    torch.testing.assert_close(loss, expected)
    assert isinstance(heads.heads[0], SubClusterAdaCos)
    torch.testing.assert_close(heads(e, y), heads.heads[0](e, yy))  # plain embedding: C head only


def test_heads_reject_bad_weights():
    with pytest.raises(ValueError):
        SelfSupervisedHeads(3, 4, loss_weights=(0, 0, 0))
    with pytest.raises(ValueError):
        SelfSupervisedHeads(3, 4, loss_weights=(1, 1))
