"""Noise mixing at a given SNR (supplemental noise-only clips as augmentation)."""

import numpy as np
import pytest
import torch

from asd_utils.training.noise_mix import NoiseMixer, mix_at_snr


def _snr_db(signal, mixture):
    noise = mixture - signal
    return 10 * np.log10(np.mean(signal**2, axis=-1) / np.mean(noise**2, axis=-1))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 12.5])
def test_mix_at_snr_hits_the_requested_snr_numpy_and_torch(snr):
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((3, 8000)).astype(np.float32) * 0.1
    noise = rng.standard_normal((3, 3000)).astype(np.float32)  # shorter: tiled to 8000
    mixed = mix_at_snr(signal, noise, snr)
    assert mixed.dtype == np.float32 and mixed.shape == signal.shape
    np.testing.assert_allclose(_snr_db(signal, mixed), snr, atol=1e-3)
    mixed_t = mix_at_snr(torch.from_numpy(signal), torch.from_numpy(noise), snr)
    np.testing.assert_allclose(mixed_t.numpy(), mixed, rtol=1e-5, atol=1e-6)


def test_mix_at_snr_per_row_snr_and_tiling():
    signal = np.ones((2, 10), dtype=np.float64)
    noise = np.array([[1.0, -1.0, 1.0]])  # power 1, tiled to 10 samples
    mixed = mix_at_snr(signal, noise, np.array([0.0, 20.0]))
    np.testing.assert_allclose(mixed[0] - 1.0, np.tile([1.0, -1.0, 1.0], 4)[:10])
    np.testing.assert_allclose(mixed[1] - 1.0, 0.1 * np.tile([1.0, -1.0, 1.0], 4)[:10])


def test_noise_mixer_mixes_about_p_of_the_rows_reproducibly():
    rng = np.random.default_rng(1)
    mixer = NoiseMixer(rng.standard_normal((4, 2000)), snr_db_range=(5.0, 5.0), p=0.3)
    waves = torch.from_numpy(rng.standard_normal((2000, 1000)).astype(np.float32))
    out1 = mixer(waves, torch.Generator().manual_seed(3))
    out2 = mixer(waves, torch.Generator().manual_seed(3))
    torch.testing.assert_close(out1, out2)
    changed = (out1 != waves).any(dim=1).numpy()
    assert 0.25 < changed.mean() < 0.35
    np.testing.assert_allclose(_snr_db(waves.numpy()[changed], out1.numpy()[changed]), 5.0, atol=1e-2)
    np.testing.assert_array_equal(out1.numpy()[~changed], waves.numpy()[~changed])


def test_noise_mixer_rejects_bad_input():
    with pytest.raises(ValueError, match="noise_waves"):
        NoiseMixer(np.zeros((0, 10)))
    with pytest.raises(ValueError, match="low <= high"):
        NoiseMixer(np.ones((1, 10)), snr_db_range=(5, 0))
    with pytest.raises(ValueError, match="p must"):
        NoiseMixer(np.ones((1, 10)), p=1.5)
