"""Whole-clip data paths: random training crops and crop-averaged embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asd_utils.training import crops


def test_crop_starts_cover_the_whole_clip():
    assert crops.crop_starts(10, 4, 3).tolist() == [0, 3, 6]          # 6 + 4 = 10: ends at the clip end
    assert crops.crop_starts(11, 4, 3).tolist() == [0, 3, 6, 7]       # extra window flush with the end
    assert crops.crop_starts(4, 4, 2).tolist() == [0]
    starts = crops.crop_starts(80000, 32000, 16000)
    covered = np.zeros(80000, bool)
    for s in starts:
        covered[s:s + 32000] = True
    assert covered.all() and starts[-1] + 32000 == 80000
    with pytest.raises(ValueError, match="shorter than the crop"):
        crops.crop_starts(3, 4, 2)
    with pytest.raises(ValueError, match="must be > 0"):
        crops.crop_starts(10, 4, 0)


def test_random_crops_are_windows_of_each_row_and_reach_both_ends():
    x = torch.arange(3 * 20, dtype=torch.float32).reshape(3, 20)
    gen = torch.Generator().manual_seed(0)
    seen_starts = set()
    for _ in range(200):
        out = crops.random_crops(x, 5, gen)
        assert out.shape == (3, 5)
        for row in range(3):
            start = int(out[row, 0] - x[row, 0])
            assert torch.equal(out[row], x[row, start:start + 5])  # a contiguous window of its own row
            seen_starts.add(start)
    assert seen_starts == set(range(16))  # every offset 0..T-crop is drawn, including the last
    assert crops.random_crops(x, 20, gen) is x
    with pytest.raises(ValueError, match="shorter than the crop"):
        crops.random_crops(x, 21, gen)


def test_crop_loader_is_seeded_and_varies_crops_between_epochs():
    rng = np.random.default_rng(0)
    waves = rng.standard_normal((10, 50)).astype(np.float32)
    labels = np.arange(10) % 3

    def epochs(seed, n=2):
        loader = crops.make_crop_loader(waves, labels, crop_samples=8, batch_size=4, seed=seed)
        return [[(xb.clone(), yb.clone()) for xb, yb in loader] for _ in range(n)]

    a, b, c = epochs(0), epochs(0), epochs(1)
    for ea, eb in zip(a, b):
        for (xa, ya), (xb, yb) in zip(ea, eb):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a[0], c[0]))
    assert not all(torch.equal(x0, x1) for (x0, _), (x1, _) in zip(a[0], a[1]))  # new crops every epoch
    for xb, yb in a[0]:
        assert xb.shape[1] == 8 and xb.dtype == torch.float32 and yb.dtype == torch.int64
        for row, label in zip(xb, yb):
            # the crop comes from a clip of its own label
            hits = [i for i in range(10) if any(np.allclose(waves[i, s:s + 8], row.numpy()) for s in range(43))]
            assert hits and all(labels[i] == int(label) for i in hits)
    # 10 clips, batch 3: a final batch of one clip is dropped (BatchNorm)
    loader = crops.make_crop_loader(waves, labels, crop_samples=8, batch_size=3, seed=0)
    assert [len(yb) for _, yb in loader] == [3, 3, 3]
    with pytest.raises(ValueError, match="T >= crop_samples"):
        crops.make_crop_loader(waves, labels, crop_samples=60, batch_size=4, seed=0)


def test_trainer_resumes_a_crop_loader_exactly(tmp_path):
    """The crop offsets come from the loader's generator, which the trainer checkpoints."""
    from asd_utils.training import Trainer, seed_everything
    from asd_utils.training.losses import SubClusterAdaCos

    rng = np.random.default_rng(1)
    waves = rng.standard_normal((12, 40)).astype(np.float32)
    labels = np.arange(12) % 2

    def run(until=None, resume=False, ckpt=None):
        seed_everything(0)
        model = torch.nn.Sequential(torch.nn.Linear(16, 8))
        loss = SubClusterAdaCos(2, 2, 8)
        trainer = Trainer(model, loss, {"lr": 1e-2}, None, 3, seed=0, progress=False, checkpoint_dir=ckpt,
                          mixup_alpha=1.0, mixup_prob=0.5)
        loader = crops.make_crop_loader(waves, labels, crop_samples=16, batch_size=4, seed=0)
        trainer.fit(loader, until_epoch=until, resume=resume)
        return model[0].weight.detach().clone()

    full = run()
    run(until=1, ckpt=tmp_path)
    resumed = run(resume=True, ckpt=tmp_path)
    assert torch.equal(full, resumed)


def test_embed_crops_is_the_mean_over_covering_windows():
    waves = np.arange(2 * 10, dtype=np.float32).reshape(2, 10)

    def embed_fn(x):  # (B, 4) -> (B, 2): first sample and window mean
        return torch.stack([x[:, 0], x.mean(dim=1)], dim=1)

    out = crops.embed_crops(embed_fn, waves, crop_samples=4, hop_samples=3, batch_size=3)
    starts = [0, 3, 6]
    for row in range(2):
        expected = np.mean([[waves[row, s], waves[row, s:s + 4].mean()] for s in starts], axis=0)
        np.testing.assert_allclose(out[row], expected, rtol=1e-6)
    # a clip's embedding does not depend on the other clips or on the batch size
    alone = crops.embed_crops(embed_fn, waves[1:], crop_samples=4, hop_samples=3, batch_size=64)
    np.testing.assert_allclose(alone[0], out[1], rtol=1e-6)
    # a clip exactly one window long is that window's embedding
    single = crops.embed_crops(embed_fn, waves[:, :4], crop_samples=4, hop_samples=2)
    np.testing.assert_allclose(single, embed_fn(torch.as_tensor(waves[:, :4])).numpy())
    with pytest.raises(ValueError, match="shorter than the crop"):
        crops.embed_crops(embed_fn, waves, crop_samples=11, hop_samples=2)


def test_longest_clip_seconds_reads_headers(tmp_path):
    import soundfile as sf

    for name, seconds in (("a.wav", 1.0), ("b.wav", 2.5)):
        sf.write(str(tmp_path / name), np.zeros(int(16000 * seconds), np.float32), 16000)
    assert crops.longest_clip_seconds([tmp_path / "a.wav", tmp_path / "b.wav"]) == pytest.approx(2.5)
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    with pytest.raises(ValueError, match="broken.wav"):
        crops.longest_clip_seconds([tmp_path / "a.wav", tmp_path / "broken.wav"])
