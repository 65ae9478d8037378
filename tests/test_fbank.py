"""Kaldi fbank against torchaudio 2.11.0's reference values (tests/fixtures/kaldi_fbank_golden.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asd_utils.features.fbank import beats_fbank, eat_fbank, kaldi_fbank, kaldi_mel_banks

GOLDEN = Path(__file__).parent / "fixtures" / "kaldi_fbank_golden.npz"
NAMES = ["sweep", "machine"]


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("name", NAMES)
def test_beats_options_match_torchaudio(golden, name):
    wave = torch.from_numpy(golden[f"{name}_wave"])
    reference = golden[f"{name}_beats_fbank"]
    out = beats_fbank(wave).numpy()
    assert out.shape == reference.shape
    np.testing.assert_allclose(out, reference, atol=1e-3, rtol=0)
    # Same thing through the general function with the options written out.
    explicit = kaldi_fbank(
        wave * 2**15, num_mel_bins=128, sample_frequency=16000, frame_length=25, frame_shift=10
    )
    np.testing.assert_allclose(explicit.numpy(), reference, atol=1e-3, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_eat_options_match_torchaudio(golden, name):
    wave = torch.from_numpy(golden[f"{name}_wave"])
    reference = golden[f"{name}_eat_fbank"]
    out = eat_fbank(wave).numpy()
    assert out.shape == reference.shape
    np.testing.assert_allclose(out, reference, atol=1e-3, rtol=0)


@pytest.mark.parametrize("fn", [beats_fbank, eat_fbank])
def test_batch_equals_per_item(golden, fn):
    n = min(golden[f"{name}_wave"].shape[0] for name in NAMES)
    waves = torch.stack([torch.from_numpy(golden[f"{name}_wave"][:n]) for name in NAMES])
    batched = fn(waves)
    assert batched.shape[0] == 2 and batched.shape[-1] == 128
    for i in range(2):
        torch.testing.assert_close(batched[i], fn(waves[i]), atol=1e-5, rtol=0)


def test_frame_count_and_shapes():
    waves = torch.randn(3, 16000) * 0.1
    out = kaldi_fbank(waves * 2**15)
    assert out.shape == (3, 1 + (16000 - 400) // 160, 128)
    assert kaldi_fbank(torch.randn(300)).shape == (0, 128)  # shorter than one frame with snip_edges
    no_snip = kaldi_fbank(waves, snip_edges=False)
    assert no_snip.shape == (3, (16000 + 80) // 160, 128)
    with_energy = kaldi_fbank(waves, use_energy=True, num_mel_bins=40)
    assert with_energy.shape == (3, 98, 41)


def test_differentiable_and_dtype():
    waves = torch.randn(2, 4000, requires_grad=True)
    beats_fbank(waves).sum().backward()
    assert waves.grad is not None and torch.isfinite(waves.grad).all()
    assert kaldi_fbank(torch.randn(4000, dtype=torch.float64)).dtype == torch.float64


def test_mel_banks_are_kaldi_triangles():
    banks = kaldi_mel_banks(23, 512, 16000.0, 20.0, 0.0)
    assert banks.shape == (23, 257)
    assert float(banks.min()) >= 0.0 and float(banks.max()) <= 1.0
    assert float(banks[:, -1].abs().max()) == 0.0  # Nyquist bin unused
    assert (banks.sum(dim=1) > 0).all()


def test_bad_options_raise():
    with pytest.raises(ValueError, match="window_type"):
        kaldi_fbank(torch.randn(1000), window_type="kaiser")
    with pytest.raises(ValueError, match="shape"):
        kaldi_fbank(torch.randn(1, 1, 1000))
