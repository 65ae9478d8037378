import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from asd_utils.losses import SubClusterAdaCos
from asd_utils.models import ThreeSubNetwork, branch_sizes
from asd_utils.training import Trainer, seed_everything


def tiny(n_classes=3, seconds=1.0):
    seed_everything(0)
    return ThreeSubNetwork(n_classes, sample_rate=16000, clip_seconds=seconds, width=0.125)


def test_embedding_shapes_and_branches():
    model = tiny()
    waves = torch.randn(3, 16000)
    emb = model.embed(waves)
    assert emb.shape == (3, 512) and model.embedding_dim == 512 and torch.isfinite(emb).all()
    parts = model.embed_branches(waves)
    assert {k: v.shape[1] for k, v in parts.items()} == {"waveform": 128, "spectrum": 128, "stft": 256}
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model(waves), model(waves))


def test_paper_configuration_sizes():
    model = ThreeSubNetwork(10, clip_seconds=12.0)  # width 1.0: the report's model
    assert model.n_samples == 192000
    assert branch_sizes(model) == {"waveform_flat": 128 * 24, "spectrum_flat": 128 * 12,
                                   "stft_flat": 128 * 17, "frames": 374}
    assert model.waveform_branch.convs[0].kernel_size == (256,) and model.waveform_branch.convs[0].stride == (64,)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.waveform_branch.fc)
    assert n_linear == 4
    assert len(model.stft_branch.blocks) == 4
    assert isinstance(model.default_loss(), SubClusterAdaCos)


def test_wrong_length_and_width_raise():
    model = tiny()
    with pytest.raises(ValueError, match="16000"):
        model(torch.randn(2, 15000))
    with pytest.raises(ValueError, match="width"):
        ThreeSubNetwork(3, clip_seconds=1.0, width=0)
    with pytest.raises(ValueError, match="STFT window"):
        ThreeSubNetwork(3, clip_seconds=0.05)


def test_amplitude_spectrum_and_log_stft_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4096)).astype(np.float32)
    spec = ThreeSubNetwork.amplitude_spectrum(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(spec, np.abs(np.fft.fft(x.astype(np.float64), axis=1))[:, :2048],
                               rtol=1e-4, atol=1e-3)
    branch = tiny(seconds=0.256).stft_branch
    log_mag = branch.spectrogram(torch.from_numpy(x)).numpy()
    assert log_mag.shape == (2, 513, 1 + (4096 - 1024) // 512)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)  # periodic Hann
    frame = x[1, 3 * 512: 3 * 512 + 1024] * window
    expected = np.log(np.abs(np.fft.rfft(frame)) + 1e-5)
    np.testing.assert_allclose(log_mag[1, :, 3], expected, rtol=1e-4, atol=1e-3)


def test_trains_with_subcluster_adacos_and_mixup():
    model = tiny(n_classes=2, seconds=0.5)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8000, generator=gen)
    x[8:] *= torch.linspace(0, 1, 8000)  # two distinguishable classes
    y = torch.tensor([0] * 8 + [1] * 8)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(1))
    trainer = Trainer(model, model.default_loss(n_subclusters=2), {"name": "adam", "lr": 1e-3}, epochs=2,
                      mixup_alpha=1.0, progress=False)
    history = trainer.fit(loader)
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    model.train()
    trainer.loss_fn(model(x[:4]), y[:4]).backward()
    for branch in (model.waveform_branch, model.spectrum_branch, model.stft_branch):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in branch.parameters())
