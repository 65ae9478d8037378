import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from asd_utils.features.logmel import log_mel, mel_power, stack_frames

# Made by running the official nttcslab/dcase2023_task2_baseline_ae code (scripts/make_ae_golden.py).
GOLDEN = Path(__file__).parent / "fixtures" / "ae_official_tiny.npz"


def _signal(seconds=1.5, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_log_mel_matches_librosa_baseline_definition():
    y = _signal()
    y[:8000] = 0.0  # digital silence: the floor decides these bins
    reference = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, hop_length=512, n_mels=128, power=2.0)
    # the official datasets/loader_common.py:file_to_vectors, written out
    reference = 20.0 / 2.0 * np.log10(np.maximum(reference, sys.float_info.epsilon))
    ours = log_mel(y).numpy()
    assert ours.shape == reference.shape == (128, 1 + len(y) // 512)
    np.testing.assert_allclose(ours, reference, atol=1e-3)
    assert ours.min() == pytest.approx(10 * np.log10(sys.float_info.epsilon), abs=1e-3)  # -156.5 dB, not -69 dB


def test_log_mel_vectors_equal_the_official_code():
    golden = np.load(GOLDEN)
    official = golden["logmel_vectors"]  # (6, 640): 0.3 s whose first half is digital silence
    ours = stack_frames(log_mel(golden["logmel_wave"]), n_frames=5)[0].numpy()
    assert ours.shape == official.shape == (6, 640)
    assert official.min() < -150  # the floor max(mel, float eps) is exercised
    np.testing.assert_allclose(ours, official, atol=1e-3)


def test_batch_equals_single_clips():
    batch = np.stack([_signal(seed=0), _signal(seed=1)])
    together = mel_power(batch)
    for i in range(2):
        np.testing.assert_allclose(together[i].numpy(), mel_power(batch[i]).numpy(), rtol=1e-5, atol=1e-6)


def test_stack_frames_layout_is_frame_by_frame():
    logmel = torch.arange(2 * 3 * 6, dtype=torch.float32).reshape(2, 3, 6)  # (batch, mels, frames)
    stacked = stack_frames(logmel, n_frames=5)
    assert stacked.shape == (2, 2, 15)
    # position 1 of clip 0 = frames 1..5, each frame's 3 mel values in turn
    expected = torch.cat([logmel[0, :, t] for t in range(1, 6)])
    assert torch.equal(stacked[0, 1], expected)


def test_stack_frames_rejects_short_clips():
    with pytest.raises(ValueError, match="fewer than the 5 frames"):
        stack_frames(torch.zeros(1, 128, 4), n_frames=5)
