"""Cached, batched layer-embedding extraction."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from asd_utils.backbones import load_backbone
from asd_utils.backbones.embeddings import extract_layer_embeddings, resolve_pooling, state_dict_hash


class CountingBackbone:
    """Wraps a backbone's hidden_states with a call counter."""

    def __init__(self, monkeypatch, model):
        self.calls = 0
        original = model.hidden_states

        def counted(waves):
            self.calls += 1
            return original(waves)

        monkeypatch.setattr(model, "hidden_states", counted)


@pytest.fixture
def eat():
    return load_backbone("eat", size="tiny", seed=0)


@pytest.fixture
def waves():
    return (0.1 * np.random.default_rng(0).standard_normal((5, 8000))).astype(np.float32)


def test_shapes_and_batch_independence(eat, waves):
    a = extract_layer_embeddings(eat, waves, layers=[0, -1], pooling="mean", batch_size=2, progress=False)
    b = extract_layer_embeddings(eat, torch.from_numpy(waves), layers=[0, 2], batch_size=5, progress=False)
    assert list(a) == [0, 2] and a[2].shape == (5, 64) and a[2].dtype == np.float32
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5)
    with torch.inference_mode():
        direct = eat.hidden_states(torch.from_numpy(waves[:1]))[2][:, 1:].mean(1).numpy()  # CLS excluded
    np.testing.assert_allclose(a[2][:1], direct, atol=1e-5)
    cls = extract_layer_embeddings(eat, waves, layers=[1], pooling="cls", progress=False)[1]
    genrep = extract_layer_embeddings(eat, waves, layers=[1], pooling="genrep", progress=False)[1]
    assert cls.shape == (5, 64) and genrep.shape == (5, 8 * 64)


def test_cache_hits_and_invalidation(tmp_path, monkeypatch, eat, waves):
    counter = CountingBackbone(monkeypatch, eat)
    kwargs = dict(pooling="mean", batch_size=2, cache_dir=tmp_path, progress=False)
    first = extract_layer_embeddings(eat, waves, layers=[1, 2], **kwargs)
    assert counter.calls == 3
    again = extract_layer_embeddings(eat, waves, layers=[1, 2], **kwargs)
    assert counter.calls == 3  # served from the cache
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])
    extract_layer_embeddings(eat, waves, layers=[2], **kwargs)  # other layers -> new entry
    assert counter.calls == 6
    extract_layer_embeddings(eat, waves, layers=[1, 2], **{**kwargs, "pooling": "max"})
    assert counter.calls == 9
    changed = waves.copy()
    changed[0, 0] += 0.5
    extract_layer_embeddings(eat, changed, layers=[1, 2], **kwargs)
    assert counter.calls == 12
    assert len(list(tmp_path.glob("eat-tiny_*.npz"))) == 4


def test_different_random_weights_never_share_a_cache(tmp_path, waves):
    a = load_backbone("eat", size="tiny", seed=0)
    b = load_backbone("eat", size="tiny", seed=1)
    ea = extract_layer_embeddings(a, waves, layers=[2], cache_dir=tmp_path, progress=False)
    eb = extract_layer_embeddings(b, waves, layers=[2], cache_dir=tmp_path, progress=False)
    assert not np.allclose(ea[2], eb[2])
    with torch.no_grad():  # an in-place change (e.g. an optimizer step) changes the key too
        before = state_dict_hash(a)
        a.blocks[0].attn.qkv.weight.mul_(1.5)
    assert state_dict_hash(a) != before
    ea2 = extract_layer_embeddings(a, waves, layers=[2], cache_dir=tmp_path, progress=False)
    assert not np.allclose(ea[2], ea2[2])
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_paths_are_keyed_by_content_not_by_place_or_time(tmp_path, monkeypatch, eat, waves):
    """A touched clip, or the same clips copied to another folder, reuse the cache; a clip whose
    sound changed is embedded again."""
    import shutil

    paths = []
    for i, wave in enumerate(waves[:3]):
        path = tmp_path / "audio" / f"clip_{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, wave, 16000, subtype="FLOAT")
        paths.append(path)
    counter = CountingBackbone(monkeypatch, eat)
    kwargs = dict(layers=[2], batch_size=4, clip_samples=8000, cache_dir=tmp_path / "cache", progress=False)
    first = extract_layer_embeddings(eat, paths, **kwargs)
    extract_layer_embeddings(eat, [str(p) for p in paths], **kwargs)
    assert counter.calls == 1
    stat = paths[1].stat()
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    extract_layer_embeddings(eat, paths, **kwargs)
    copied = shutil.copytree(tmp_path / "audio", tmp_path / "moved" / "audio")
    extract_layer_embeddings(eat, sorted(copied.glob("*.wav")), **kwargs)
    assert counter.calls == 1
    sf.write(paths[1], 0.5 * waves[1], 16000, subtype="FLOAT")
    again = extract_layer_embeddings(eat, paths, **kwargs)
    assert counter.calls == 2
    np.testing.assert_allclose(first[2][[0, 2]], again[2][[0, 2]], atol=1e-6)
    assert not np.allclose(first[2][1], again[2][1], atol=1e-4)
    sf.write(paths[1], waves[1], 16000, subtype="FLOAT")
    from_waves = extract_layer_embeddings(eat, waves[:3], layers=[2], progress=False)
    np.testing.assert_allclose(first[2], from_waves[2], atol=1e-5)


def test_bad_inputs(eat, waves):
    hubert = load_backbone("hubert", size="tiny")
    with pytest.raises(ValueError, match="no CLS token"):
        extract_layer_embeddings(hubert, waves, layers=[1], pooling="cls", progress=False)
    with pytest.raises(ValueError, match="patch-grid"):
        resolve_pooling("genrep", hubert)
    with pytest.raises(ValueError, match="cache_name"):
        extract_layer_embeddings(eat, waves, layers=[1], pooling=lambda h: h.mean(1), progress=False)
    with pytest.raises(ValueError, match="unknown pooling"):
        extract_layer_embeddings(eat, waves, layers=[1], pooling="median", progress=False)
    with pytest.raises(ValueError, match="out of range"):
        extract_layer_embeddings(eat, waves, layers=[3], progress=False)


def test_clips_of_different_lengths_are_each_embedded_at_their_own_length(eat, waves):
    mixed = [waves[0], waves[1][:4000], waves[2]]
    together = extract_layer_embeddings(eat, mixed, layers=[1], batch_size=3, progress=False)[1]
    for i, clip in enumerate(mixed):
        alone = extract_layer_embeddings(eat, [clip], layers=[1], progress=False)[1]
        np.testing.assert_allclose(together[i], alone[0], atol=1e-5)
    short_tiled = extract_layer_embeddings(eat, [waves[1][:4000]], layers=[1], clip_samples=len(waves[0]),
                                           progress=False)[1]
    assert not np.allclose(together[1], short_tiled[0], atol=1e-3)  # own length, not tiled to the batch's


def test_callable_pooling_with_cache_name(tmp_path, eat, waves):
    def first_patch(h):
        return h[:, 1]

    first_patch.cache_name = "first-patch-v1"
    out = extract_layer_embeddings(
        eat, waves, layers=[1], pooling=first_patch, cache_dir=tmp_path, progress=False
    )
    assert out[1].shape == (5, 64)
    assert len(list(tmp_path.glob("*.npz"))) == 1
