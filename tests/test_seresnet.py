"""SE-ResNet18 log-mel branch and the two-branch model (asd_utils.models.seresnet)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asd_utils.models.blocks import SqueezeExcitation
from asd_utils.models.seresnet import SEBasicBlock, SEResNet18Branch, SEResNetFFTModel, log_mel_torch


def test_squeeze_excitation_rescales_channels_by_its_formula():
    torch.manual_seed(0)
    se = SqueezeExcitation(8, ratio=4, dims=2)
    x = torch.randn(2, 8, 5, 3)
    squeezed = x.mean(dim=(2, 3))                                   # (B, C)
    hidden = torch.relu(squeezed @ se.reduce.weight.t())            # W1, no bias
    gate = torch.sigmoid(hidden @ se.expand.weight.t())             # W2, no bias
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])
    # every channel is scaled by one factor in (0, 1)
    ratio = se(x) / x
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-5)
    assert ((ratio > 0) & (ratio < 1)).all()


def test_basic_block_shapes_and_identity_shortcut():
    block = SEBasicBlock(4, 8, stride=2)
    assert block(torch.randn(2, 4, 9, 7)).shape == (2, 8, 5, 4)
    same = SEBasicBlock(4, 4, stride=1)
    assert same.project is None and same(torch.randn(1, 4, 6, 6)).shape == (1, 4, 6, 6)


def test_resnet18_layout_and_output_shape():
    branch = SEResNet18Branch(32, 16, width=0.25)
    assert len(branch.blocks) == 8  # 4 stages x 2 basic blocks
    assert [b.conv2.out_channels for b in branch.blocks] == [4, 4, 8, 8, 16, 16, 32, 32]
    assert branch(torch.randn(3, 32, 40)).shape == (3, 16)
    with pytest.raises(ValueError, match="log-mel"):
        branch(torch.randn(3, 31, 40))


def test_branch_removes_the_temporal_mean():
    torch.manual_seed(0)
    branch = SEResNet18Branch(16, 8, width=0.25).eval()
    x = torch.randn(2, 16, 30)
    offset = torch.randn(2, 16, 1) * 5  # a constant per band and clip
    torch.testing.assert_close(branch(x + offset), branch(x), rtol=1e-4, atol=1e-4)
    # without the removal (a diagnosis setting of notebook 04) the offset reaches the embedding
    torch.manual_seed(0)
    keep = SEResNet18Branch(16, 8, width=0.25, remove_temporal_mean=False).eval()
    assert branch.remove_temporal_mean and not keep.remove_temporal_mean
    assert not torch.allclose(keep(x + offset), keep(x), atol=1e-2)
    assert SEResNetFFTModel(16000, n_mels=16, emb_dim=8, width=0.25,
                            remove_temporal_mean=False).spec_branch.remove_temporal_mean is False


def test_log_mel_front_end_band_limits():
    sr = 16000
    t = np.arange(sr) / sr
    low = torch.tensor(np.sin(2 * np.pi * 100 * t), dtype=torch.float32)[None]
    high = torch.tensor(np.sin(2 * np.pi * 2000 * t), dtype=torch.float32)[None]
    kw = dict(sample_rate=sr, n_fft=1024, hop_length=512, n_mels=32, fmin=200.0, fmax=8000.0)
    # a 100 Hz tone lies below fmin: far less mel energy than a 2 kHz tone of the same amplitude
    assert log_mel_torch(low, **kw).exp().sum() < 0.01 * log_mel_torch(high, **kw).exp().sum()


def test_model_eval_and_train_outputs():
    torch.manual_seed(0)
    model = SEResNetFFTModel(8000, n_mels=16, width=0.125, emb_dim=8)
    assert model.dim == 16
    model.eval()
    with torch.inference_mode():
        e = model(torch.randn(3, 8000))
    assert e.shape == (3, 16)
    model.train()
    packed = model(torch.randn(4, 8000))
    assert packed.shape == (4, 4 * 8 + 2)
    with pytest.raises(ValueError, match="8000"):
        model(torch.randn(2, 7999))


def test_eval_embedding_of_a_clip_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    model = SEResNetFFTModel(8000, n_mels=16, width=0.125, emb_dim=8).eval()
    x = torch.randn(5, 8000)
    with torch.inference_mode():
        full = model(x)
        alone = model(x[2:3])
    torch.testing.assert_close(full[2:3], alone, rtol=1e-4, atol=1e-5)
