"""HuBERT / wav2vec 2.0 / WavLM / UniSpeech-SAT through transformers: offline loading, strictness,
preprocessing, sizes."""

from __future__ import annotations

import json
import socket

import pytest
import torch
from safetensors.torch import load_file, save_file

from asd_utils.backbones import CheckpointError, load_backbone
from asd_utils.backbones.hf_speech import HF_FAMILIES, hf_config

FAMILIES = sorted(HF_FAMILIES)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test; offline mode on."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def waves():
    gen = torch.Generator().manual_seed(0)
    return 0.05 * torch.randn(2, 8000, generator=gen) + 0.01


def _save(backbone, folder, do_normalize=None):
    backbone.model.save_pretrained(folder)
    if do_normalize is not None:
        (folder / "preprocessor_config.json").write_text(
            json.dumps(
                {
                    "do_normalize": do_normalize,
                    "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                    "feature_size": 1,
                    "padding_value": 0.0,
                    "sampling_rate": 16000,
                    "return_attention_mask": False,
                }
            )
        )
    return folder


def _run(model, waves):
    with torch.inference_mode():
        return model.hidden_states(waves)


@pytest.mark.parametrize("name", FAMILIES)
def test_roundtrip_offline(tmp_path, waves, no_network, name):
    random = load_backbone(name, size="tiny", seed=1)
    folder = _save(random, tmp_path / name, do_normalize=True)
    loaded = load_backbone(name, folder, size="tiny")
    assert loaded.pretrained and loaded.checkpoint_sha256 and loaded.do_normalize
    random.do_normalize = True
    a, b = _run(random, waves), _run(loaded, waves)
    assert len(a) == len(b) == 3  # input + 2 layers
    assert a[0].shape == (2, 24, 32)  # 20 ms hop: 0.5 s -> 24 frames
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=0.0, rtol=0.0)


def test_normalisation_follows_preprocessor_config(tmp_path, waves):
    random = load_backbone("wav2vec2", size="tiny")
    off = load_backbone("wav2vec2", _save(random, tmp_path / "off", do_normalize=False), size="tiny")
    on = load_backbone("wav2vec2", _save(random, tmp_path / "on", do_normalize=True), size="tiny")
    assert not off.do_normalize and on.do_normalize
    centred = (waves - waves.mean(-1, keepdim=True)) / torch.sqrt(
        waves.var(-1, keepdim=True, unbiased=False) + 1e-7
    )
    torch.testing.assert_close(on.preprocess(waves), centred)
    torch.testing.assert_close(_run(on, waves)[-1], _run(off, centred)[-1], atol=1e-5, rtol=0)


def test_model_id_from_local_cache(tmp_path, waves, no_network):
    random = load_backbone("hubert", size="tiny", seed=2)
    repo = tmp_path / "cache" / "models--someorg--hubert-tiny"
    snapshot = repo / "snapshots" / "0123abcd"
    _save(random, snapshot, do_normalize=False)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    loaded = load_backbone("hubert", "someorg/hubert-tiny", size="tiny", cache_dir=tmp_path / "cache")
    torch.testing.assert_close(_run(random, waves)[-1], _run(loaded, waves)[-1], atol=0.0, rtol=0.0)
    with pytest.raises(
        CheckpointError, match="someorg/absent.*nor a model id in the local Hugging Face cache"
    ):
        load_backbone("hubert", "someorg/absent", size="tiny", cache_dir=tmp_path / "cache")


def test_size_mismatch_large_vs_base(tmp_path):
    folder = tmp_path / "large"
    folder.mkdir()
    hf_config("wavlm", "large").save_pretrained(folder)
    with pytest.raises(CheckpointError, match="24 layers, hidden 1024.*size='base'"):
        load_backbone("wavlm", folder, size="base")


def test_wrong_family(tmp_path):
    folder = _save(load_backbone("wavlm", size="tiny"), tmp_path / "wavlm")
    with pytest.raises(CheckpointError, match="model_type 'wavlm', expected 'hubert'"):
        load_backbone("hubert", folder, size="tiny")


def test_missing_weight_is_an_error(tmp_path):
    folder = _save(load_backbone("unispeech_sat", size="tiny"), tmp_path / "u")
    state = load_file(str(folder / "model.safetensors"))
    victim = next(k for k in state if "layers.1.attention.v_proj.weight" in k)
    del state[victim]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="missing weights.*v_proj"):
        load_backbone("unispeech_sat", folder, size="tiny")


def test_unexpected_weight_is_an_error(tmp_path):
    folder = _save(load_backbone("hubert", size="tiny"), tmp_path / "h")
    state = load_file(str(folder / "model.safetensors"))
    state["encoder.extra_gate.weight"] = torch.zeros(2)
    state["quantizer.codevectors"] = torch.zeros(2)  # a published pre-training head: tolerated
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="unexpected weights.*extra_gate"):
        load_backbone("hubert", folder, size="tiny")


def test_bad_paths(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist.*facebook/hubert-base-ls960"):
        load_backbone("hubert", tmp_path / "absent")
    file = tmp_path / "model.bin"
    file.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="is a file; expected a Hugging Face folder"):
        load_backbone("wav2vec2", file, size="tiny")
    folder = tmp_path / "noconfig"
    folder.mkdir()
    with pytest.raises(CheckpointError, match="has no config.json"):
        load_backbone("wav2vec2", folder, size="tiny")


def test_published_base_configs():
    for name in FAMILIES:
        c = hf_config(name, "base")
        assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (
            768,
            12,
            12,
            3072,
        )
        assert tuple(c.conv_stride) == (5, 2, 2, 2, 2, 2, 2) and tuple(c.conv_kernel) == (
            10,
            3,
            3,
            3,
            3,
            2,
            2,
        )
        assert (
            tuple(c.conv_dim) == (512,) * 7 and c.feat_extract_norm == "group" and not c.do_stable_layer_norm
        )
