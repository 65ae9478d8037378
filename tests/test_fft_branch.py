"""The |FFT| branch and its building blocks (squeeze-excitation, Keras 'same' convolution)."""

import math

import numpy as np
import pytest
import torch

from asd_utils.models.blocks import SameConv1d, SqueezeExcitation, same_padding
from asd_utils.models.fft_branch import FFTBranch


def test_squeeze_excitation_equals_its_formula_1d_and_2d():
    torch.manual_seed(0)
    for dims, shape in ((1, (3, 32, 10)), (2, (2, 32, 4, 5))):
        se = SqueezeExcitation(32, ratio=16, dims=dims)
        x = torch.randn(*shape)
        squeezed = x.mean(dim=tuple(range(2, x.dim())))
        gate = torch.sigmoid(torch.relu(squeezed @ se.reduce.weight.T) @ se.expand.weight.T)
        expected = x * gate.view(*gate.shape, *([1] * dims))
        torch.testing.assert_close(se(x), expected)
        assert se.reduce.weight.shape == (2, 32) and se.reduce.bias is None


def test_squeeze_excitation_rejects_wrong_rank():
    with pytest.raises(ValueError, match="4-D"):
        SqueezeExcitation(8, dims=2)(torch.zeros(2, 8, 3))


@pytest.mark.parametrize("length,kernel,stride", [(100, 7, 3), (144000, 256, 64), (71, 16, 4), (5, 9, 1)])
def test_same_conv_gives_ceil_length_and_matches_explicit_padding(length, kernel, stride):
    conv = SameConv1d(1, 2, kernel, stride=stride, bias=False)
    x = torch.randn(1, 1, length)
    y = conv(x)
    assert y.shape[-1] == math.ceil(length / stride)
    left, right = same_padding(length, kernel, stride)
    ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (left, right)), conv.weight, stride=stride)
    torch.testing.assert_close(y, ref)


def test_fft_branch_sizes_of_the_published_model():
    branch = FFTBranch(288_000)  # 18 s at 16 kHz, as ssl4asd
    # 144000 bins -> ceil(/64) 2250 -> ceil(/32) 71 -> ceil(/4) 18 frames x 128 channels
    assert branch.flat_dim == 18 * 128
    assert branch(torch.randn(2, 288_000)).shape == (2, 128)


def test_fft_branch_sees_only_the_amplitude_spectrum():
    """A circular time shift leaves |DFT| unchanged, so the embedding is unchanged."""
    torch.manual_seed(0)
    branch = FFTBranch(4000, width=0.125).eval()
    x = torch.randn(3, 4000)
    shifted = torch.roll(x, 777, dims=1)
    with torch.inference_mode():
        torch.testing.assert_close(branch(x), branch(shifted), rtol=1e-4, atol=1e-4)
    spec = FFTBranch.amplitude_spectrum(x)
    np.testing.assert_allclose(spec.numpy(), np.abs(np.fft.rfft(x.numpy(), axis=1))[:, :2000], rtol=1e-4, atol=1e-3)


def test_fft_branch_eval_output_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    branch = FFTBranch(4000, width=0.125)
    branch.train()
    branch(torch.randn(8, 4000))  # move the batch-norm running statistics
    branch.eval()
    x = torch.randn(5, 4000)
    with torch.inference_mode():
        alone = torch.cat([branch(x[i : i + 1]) for i in range(5)])
        together = branch(x)
    torch.testing.assert_close(alone, together, rtol=1e-5, atol=1e-5)


def test_fft_branch_rejects_wrong_length():
    with pytest.raises(ValueError, match=r"\(batch, 4000\)"):
        FFTBranch(4000)(torch.zeros(2, 3999))


def test_fft_branch_is_finite_under_float16_autocast_on_a_full_scale_10_s_clip():
    """A 10 s clip at full scale: |DFT| reaches past float16's 65,504 (here the DC bin is 160,000),
    so fp16 convolutions would give inf; the branch runs in float32 under autocast."""
    torch.manual_seed(0)
    n = 160_000
    waves = torch.ones(2, n)                         # DC at full scale: |X[0]| = 160,000
    waves[1] = torch.sign(torch.randn(n))            # full-scale noise
    spec = FFTBranch.amplitude_spectrum(waves)
    assert spec.max().item() > torch.finfo(torch.float16).max
    branch = FFTBranch(n, width=0.125).eval()
    with torch.inference_mode():
        reference = branch(waves)
        with torch.autocast(device_type="cpu", dtype=torch.float16):
            # without the guard the same convolution in float16 overflows
            naive = branch.convs[0](spec.unsqueeze(1).half())
            out = branch(waves)
    assert not torch.isfinite(naive).all()
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, reference)


def test_training_is_float32_unless_mixed_precision_is_asked_for():
    """No reproduced report trains in mixed precision: the trainer's default and every paper config
    of notebooks 03-05 are float32; mixed precision is an opt-in flag."""
    import inspect

    from asd_utils.config import load_config
    from asd_utils.training import Trainer

    assert inspect.signature(Trainer).parameters["amp"].default is False
    assert load_config("03_myps", "paper")["eat"]["mixed_precision"] is False
    assert load_config("04_nivic", "paper")["model"]["mixed_precision"] is False
    assert load_config("05_xju", "paper")["training"]["mixed_precision"] is False
    assert load_config("05_xju", "paper")["model"]["fft"]["squeeze_excitation"] is False  # ICASSP 2023 branch
