import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from asd_utils.models import ThreeSubNetwork, branch_sizes
from asd_utils.training import Trainer, seed_everything
from asd_utils.training.losses import SubClusterAdaCos


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
        emb, parts = model.embed(waves), model.embed_branches(waves)
    slices = model.branch_slices()
    assert slices == {"waveform": slice(0, 128), "spectrum": slice(128, 256), "stft": slice(256, 512)}
    for name, cols in slices.items():
        torch.testing.assert_close(emb[:, cols], parts[name], rtol=0, atol=0)
    small = ThreeSubNetwork(3, sample_rate=16000, clip_seconds=1.0, width=0.125, embedding_dims=(8, 4, 16))
    assert small.branch_slices() == {"waveform": slice(0, 8), "spectrum": slice(8, 12), "stft": slice(12, 28)}


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


def test_stft_normalisation_keeps_or_removes_the_spectral_envelope():
    """Default (the report: batch norm only): a constant per-bin offset of the log spectrum (a
    stationary envelope change) passes through the frozen batch norm as offset / sqrt(var + eps);
    with Wilkinghoff's per-clip temporal-mean removal it vanishes."""
    torch.manual_seed(0)
    spec = torch.randn(2, 513, 30)
    offset = torch.linspace(-2.0, 3.0, 513)[None, :, None]
    keep = tiny().stft_branch.eval()
    removed = ThreeSubNetwork(3, clip_seconds=1.0, width=0.125, stft_remove_temporal_mean=True).stft_branch.eval()
    assert keep.remove_temporal_mean is False and removed.remove_temporal_mean is True
    with torch.inference_mode():
        scale = 1.0 / np.sqrt(1.0 + keep.freq_norm.eps)  # fresh running statistics: mean 0, var 1
        torch.testing.assert_close(keep.normalise(spec + offset) - keep.normalise(spec),
                                   (offset * scale).expand_as(spec), rtol=0, atol=1e-5)
        torch.testing.assert_close(removed.normalise(spec + offset), removed.normalise(spec), rtol=0, atol=1e-5)
        centred = spec - spec.mean(dim=2, keepdim=True)
        torch.testing.assert_close(removed.normalise(spec), centred * scale, rtol=0, atol=1e-5)
        # end to end: doubling a clip's amplitude adds log(2) to every bin of its log spectrum
        waves = torch.randn(2, 16000)
        assert not torch.allclose(keep(2.0 * waves), keep(waves), atol=1e-3)
        torch.testing.assert_close(removed(2.0 * waves), removed(waves), rtol=1e-4, atol=1e-4)


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


def toy_tones(n_per_class=8, seconds=0.25, seed=0):
    """Three separable classes: tones at 500, 1500 and 3000 Hz (random phase and level) in noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    waves, labels = [], []
    for label, freq in enumerate((500.0, 1500.0, 3000.0)):
        for _ in range(n_per_class):
            tone = rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
            waves.append(tone + 0.3 * rng.standard_normal(len(t)))
            labels.append(label)
    return torch.tensor(np.array(waves), dtype=torch.float32), torch.tensor(labels)


def eval_loss_and_accuracy(model, loss_fn, x, y):
    """Loss (clean targets, no mixup) and classification accuracy with the model in eval mode."""
    model.eval()
    loss_fn.eval()
    with torch.inference_mode():
        emb = model(x)
        return float(loss_fn(emb, y)), float((loss_fn.logits(emb).argmax(dim=1) == y).float().mean())


def test_learns_a_separable_toy_set_with_subcluster_adacos_and_mixup():
    """Loss falls and training accuracy rises from chance to (nearly) perfect; every branch gets gradients."""
    x, y = toy_tones()
    model = tiny(n_classes=3, seconds=0.25)
    loss_fn = model.default_loss(n_subclusters=2)
    loss_before, acc_before = eval_loss_and_accuracy(model, loss_fn, x, y)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(1))
    trainer = Trainer(model, loss_fn, {"name": "adam", "lr": 3e-3}, epochs=12, mixup_alpha=1.0, mixup_prob=0.5,
                      progress=False)
    history = trainer.fit(loader)
    loss_after, acc_after = eval_loss_and_accuracy(model, loss_fn, x, y)
    assert all(np.isfinite(h["loss"]) for h in history)
    assert history[-1]["loss"] < history[0]["loss"]  # the (mixup) training loss falls
    # the eval-mode loss on clean targets falls by a quarter or more (1.10 -> 0.64 here); accuracy goes
    # from chance to (nearly) all.
    # (eval mode lags train mode until BatchNorm's running statistics have caught up: ~30 steps here)
    assert loss_after < 0.75 * loss_before, (loss_before, loss_after)
    assert acc_before < 0.6 and acc_after >= 0.95, (acc_before, acc_after)
    model.train()
    loss_fn(model(x[:4]), y[:4]).backward()
    for branch in (model.waveform_branch, model.spectrum_branch, model.stft_branch):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in branch.parameters())


def test_whole_clips_train_on_random_windows_and_embed_as_window_means(monkeypatch):
    from asd_utils.methods import ioa
    from asd_utils.training import crops

    calls = []
    real_loader = crops.make_crop_loader

    def spy(*args, **kwargs):
        calls.append(kwargs["crop_samples"])
        return real_loader(*args, **kwargs)

    monkeypatch.setattr(crops, "make_crop_loader", spy)
    cfg = {"clip_seconds": 0.25, "width": 0.0625, "n_subclusters": 2, "batch_size": 6, "epochs": 1,
           "mixup_alpha": None}
    x, y = toy_tones(n_per_class=4, seconds=0.5)
    waves, labels = x.numpy(), y.numpy()
    whole = ioa.train_three_subnet(waves, labels, 3, cfg, progress=False)
    assert calls == [4000]  # 0.5 s clips, trained through random 0.25 s windows
    first = ioa.train_three_subnet(waves[:, :4000], labels, 3, cfg, progress=False)
    assert calls == [4000]  # clips of the model's length: the plain loader
    flat = [torch.cat([p.flatten() for p in r.model.parameters()]) for r in (whole, first)]
    assert not torch.equal(*flat)
    # embedding = mean over the windows 0-0.25, 0.125-0.375, 0.25-0.5 s, each clip on its own
    emb = ioa.embed_clips(whole.model, waves, hop_seconds=0.125, batch_size=5)
    expected = np.mean([ioa.embed(whole.model, waves[:, s:s + 4000]) for s in (0, 2000, 4000)], axis=0)
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-5)
    alone = ioa.embed_clips(whole.model, waves[3:4], hop_seconds=0.125)
    np.testing.assert_allclose(alone[0], emb[3], rtol=1e-4, atol=1e-5)
    short = waves[:, :4000]
    np.testing.assert_array_equal(ioa.embed_clips(first.model, short), ioa.embed(first.model, short))
    with pytest.raises(ValueError, match="shorter than the model"):
        ioa.embed_clips(whole.model, waves[:, :3000])
