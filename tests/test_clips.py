"""Clips at their own lengths (asd_utils.training.clips): windows, loaders, whole-clip embeddings."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from asd_utils.training import clips as cl
from asd_utils.training.crops import make_crop_loader


def _ragged(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=n).astype(np.float32) for n in lengths]


def test_load_clips_keeps_each_length(tmp_path):
    paths = []
    for i, n in enumerate((1600, 2400, 800)):
        p = tmp_path / f"c{i}.wav"
        sf.write(p, np.full(n, 0.25 * (i + 1), np.float32), 16000, subtype="FLOAT")
        paths.append(str(p))
    loaded = cl.load_clips(paths)
    assert [len(c) for c in loaded] == [1600, 2400, 800]
    assert loaded[2][0] == pytest.approx(0.75)


def test_window_comes_from_training_clips_only():
    train = _ragged([3000, 2000, 5000])
    assert cl.window_samples(train, 1.0, sample_rate=1000) == 1000
    assert cl.window_samples(train, 10.0, sample_rate=1000) == 2000  # the shortest training clip
    with pytest.raises(ValueError, match="training"):
        cl.window_samples([], 1.0)


def test_fit_window_tiles_a_short_clip_alone():
    clip = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(cl.fit_window(clip, 7), [0, 1, 2, 0, 1, 2, 0])
    assert cl.fit_window(clip, 2) is not None and len(cl.fit_window(clip, 2)) == 3  # longer: unchanged


def test_map_by_length_returns_rows_in_input_order():
    clips = _ragged([4, 6, 4, 5, 6])
    out = cl.map_by_length(lambda g: g.sum(axis=1, keepdims=True), clips)
    np.testing.assert_allclose(out[:, 0], [c.sum() for c in clips], rtol=1e-6)
    frame = cl.map_by_length(lambda g: pd.DataFrame({"n": [g.shape[1]] * len(g), "s": g.sum(axis=1)}), clips)
    assert frame["n"].tolist() == [4, 6, 4, 5, 6]


def test_clip_loader_crops_every_length_and_tiles_short_clips():
    clips = [np.arange(n, dtype=np.float32) + 1000 * i for i, n in enumerate((10, 25, 4, 40))]
    loader = cl.make_clip_loader(clips, [0, 1, 2, 3], window=8, batch_size=4, seed=0)
    waves, labels = next(iter(loader))
    assert waves.shape == (4, 8)
    for w, y in zip(waves.numpy(), labels.numpy()):
        src = clips[y]
        if len(src) < 8:
            np.testing.assert_array_equal(w, cl.fit_window(src, 8))
        else:  # a contiguous window of the clip itself: no splice
            start = int(w[0] - src[0])
            np.testing.assert_array_equal(w, src[start:start + 8])
    again = next(iter(cl.make_clip_loader(clips, [0, 1, 2, 3], window=8, batch_size=4, seed=0)))
    torch.testing.assert_close(again[0], waves)  # seeded


def test_equal_length_clips_give_the_batches_of_the_stacked_array():
    clips = _ragged([50] * 7)
    a = list(cl.make_clip_loader(clips, np.arange(7), window=20, batch_size=3, seed=3))
    b = list(make_crop_loader(np.stack(clips), np.arange(7), crop_samples=20, batch_size=3, seed=3))
    for (xa, ya), (xb, yb) in zip(a, b):
        torch.testing.assert_close(xa, xb)
        torch.testing.assert_close(ya, yb)


def test_embed_clips_covers_each_whole_clip_and_depends_on_it_alone():
    """Window means: with a window of 4 and hop 2 a clip of 9 samples has windows at 0, 2, 4, 5."""
    mean = lambda x: x.mean(dim=1, keepdim=True)  # noqa: E731
    clips = [np.arange(9, dtype=np.float32), np.arange(5, dtype=np.float32), np.array([1, 3], np.float32)]
    out = cl.embed_clips(mean, clips, window=4, hop=2)
    expected0 = np.mean([np.arange(s, s + 4).mean() for s in (0, 2, 4, 5)])
    expected1 = np.mean([np.arange(s, s + 4).mean() for s in (0, 1)])
    np.testing.assert_allclose(out[:, 0], [expected0, expected1, 2.0], rtol=1e-6)
    alone = cl.embed_clips(mean, clips[1:2], window=4, hop=2)
    np.testing.assert_allclose(alone, out[1:2])


def test_fingerprint_sees_lengths_and_samples():
    a = _ragged([5, 7])
    assert cl.clips_fingerprint(a) == cl.clips_fingerprint([c.copy() for c in a])
    assert cl.clips_fingerprint(a) != cl.clips_fingerprint([np.concatenate(a)])
    b = [a[0], a[1].copy()]
    b[1][0] += 1
    assert cl.clips_fingerprint(a) != cl.clips_fingerprint(b)
