"""BEATs: official-forward golden values, official checkpoint format, strict loading, errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from asd_utils.backbones import beats as beats_module
from asd_utils.backbones.base import Backbone
from asd_utils.backbones.beats import BEATs, BEATsConfig, build_beats, save_beats_checkpoint
from asd_utils.backbones.errors import CheckpointError
from asd_utils.storage.keys import file_sha256

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN_PT = FIXTURES / "beats_tiny_official.pt"
GOLDEN_NPZ = FIXTURES / "beats_tiny_official.npz"
OFFICIAL_URL = "github.com/microsoft/unilm"


def n_tokens(samples: int, patch: int = 16) -> int:
    frames = 1 + (samples - 400) // 160
    return (frames // patch) * 8


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN_NPZ) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    model = build_beats(size="tiny")
    path = save_beats_checkpoint(model, tmp_path_factory.mktemp("beats") / "tiny.pt")
    return model, path


# -- the official forward pass --------------------------------------------------------------------
def test_matches_official_forward_on_every_layer(golden):
    """tests/fixtures/beats_tiny_official.* were made by scripts/make_beats_golden.py running the
    official microsoft/unilm code on a random tiny checkpoint in the official format."""
    model = build_beats(GOLDEN_PT, size="tiny")
    waves = torch.from_numpy(golden["waves"])
    with torch.inference_mode():
        states = model.hidden_states(waves)
        lprobs = model.predict(waves)
    assert len(states) == model.num_layers + 1 == 3
    for i, state in enumerate(states):
        reference = golden[f"hidden_{i}"]
        assert state.shape == reference.shape == (2, n_tokens(waves.shape[1]), 64)
        np.testing.assert_allclose(state.numpy(), reference, atol=1e-4, rtol=0, err_msg=f"hidden state {i}")
    np.testing.assert_allclose(lprobs.numpy(), golden["lprobs"], atol=1e-5, rtol=0)


def test_official_checkpoint_attributes():
    model = build_beats(GOLDEN_PT, size="tiny")
    assert isinstance(model, Backbone) and model.name == "beats"
    assert model.pretrained is True and model.size == "tiny"
    assert model.checkpoint_sha256 == file_sha256(GOLDEN_PT)
    assert model.predictor is not None and model.predictor.out_features == 5
    assert model.label_dict == {i: f"/m/test{i}" for i in range(5)}
    assert not model.training
    state = torch.load(GOLDEN_PT, map_location="cpu", weights_only=True)["model"]
    assert {"encoder.pos_conv.0.weight_g", "encoder.pos_conv.0.weight_v"} <= set(state)
    assert state["encoder.pos_conv.0.weight_g"].shape == (1, 1, 32)  # weight norm over dim 2


def test_weight_norm_reparametrisation():
    model = build_beats(GOLDEN_PT, size="tiny")
    conv = model.encoder.pos_conv[0]
    v, g = conv.weight_v.detach(), conv.weight_g.detach()
    expected = torch.stack([g[0, 0, k] * v[:, :, k] / v[:, :, k].norm() for k in range(v.shape[-1])], dim=-1)
    torch.testing.assert_close(conv.weight.detach(), expected)


# -- round trip through the official format -------------------------------------------------------
def test_round_trip_identical_on_every_layer(tiny_checkpoint):
    model, path = tiny_checkpoint
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert set(payload) == {"cfg", "model"}
    assert payload["cfg"] == model.cfg.to_dict()
    loaded = build_beats(path, size="tiny")
    assert loaded.pretrained and not model.pretrained
    waves = torch.randn(2, 24000) * 0.1
    with torch.inference_mode():
        for a, b in zip(model.hidden_states(waves), loaded.hidden_states(waves), strict=True):
            torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_predictor_kept_when_weights_have_it(tmp_path):
    cfg = BEATsConfig(**beats_module.BEATS_SIZES["tiny"], finetuned_model=True, predictor_class=3)
    model = BEATs(cfg)
    model.label_dict = {0: "a", 1: "b", 2: "c"}
    payload_cfg = cfg.to_dict()
    payload_cfg["finetuned_model"] = False  # cfg silent about the head, the weights have it
    path = tmp_path / "ft.pt"
    torch.save(
        {"cfg": payload_cfg, "model": model.official_state_dict(), "label_dict": model.label_dict}, path
    )
    loaded = build_beats(path, size="tiny")
    assert loaded.predictor is not None and loaded.label_dict == {0: "a", 1: "b", 2: "c"}
    assert loaded.predict(torch.randn(1, 8000)).shape == (1, 3)


# -- shapes -----------------------------------------------------------------------------------------
def test_tiny_shapes_token_count_and_batch_consistency():
    torch.manual_seed(0)
    model = build_beats(size="tiny")
    assert model.pretrained is False and model.checkpoint_sha256 is None
    assert (model.num_layers, model.dim) == (2, 64)
    waves = torch.randn(3, 16000) * 0.1
    with torch.inference_mode():
        states = model.hidden_states(waves)
        single = model.hidden_states(waves[1:2])
    assert [tuple(s.shape) for s in states] == [(3, n_tokens(16000), 64)] * 3 == [(3, 48, 64)] * 3
    for a, b in zip(states, single, strict=True):
        torch.testing.assert_close(a[1:2], b, atol=1e-5, rtol=0)
    assert n_tokens(160000) == 496  # 10 s: 998 frames -> 62 time patches x 8


def test_architecture_contract():
    model = build_beats(size="tiny")
    layers = model.encoder.layers
    shared = layers[0].self_attn.relative_attention_bias
    assert all(layer.self_attn.relative_attention_bias is shared for layer in layers)
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        assert isinstance(getattr(layers[0].self_attn, name), nn.Linear)
    assert layers[0].alpha == pytest.approx((2 * 2) ** 0.25)


def test_differentiable():
    model = build_beats(size="tiny").train()
    waves = torch.randn(2, 8000, requires_grad=True)
    model.hidden_states(waves)[-1].pow(2).mean().backward()
    assert waves.grad is not None and model.encoder.layers[0].self_attn.q_proj.weight.grad is not None


def test_too_short_input_raises():
    with pytest.raises(ValueError, match="fewer than one 16-frame patch"):
        build_beats(size="tiny").hidden_states(torch.zeros(1, 2000))


@pytest.mark.slow
def test_base_ten_second_clip_shapes():
    model = build_beats(size="base")
    assert (model.num_layers, model.dim, model.size) == (12, 768, "base")
    with torch.inference_mode():
        states = model.hidden_states(torch.randn(1, 160000) * 0.1)
    assert len(states) == 13
    assert all(tuple(s.shape) == (1, 496, 768) for s in states)


# -- errors --------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "BEATs_iter3.pt"
    with pytest.raises(CheckpointError, match="file not found") as info:
        build_beats(path)
    assert str(path) in str(info.value) and OFFICIAL_URL in str(info.value)
    assert isinstance(info.value, ValueError)


def test_not_a_dict_or_no_cfg(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="expected a dict with 'cfg' and 'model'.*list"):
        build_beats(path)
    model = build_beats(size="tiny")
    path = tmp_path / "bare_state_dict.pt"
    torch.save({"model": model.official_state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"missing \['cfg'\]") as info:
        build_beats(path, size="tiny")
    assert str(path) in str(info.value)


def test_missing_and_unexpected_keys_are_listed(tiny_checkpoint, tmp_path):
    _, source = tiny_checkpoint
    payload = torch.load(source, map_location="cpu", weights_only=True)
    del payload["model"]["encoder.layers.1.fc2.weight"]
    payload["model"]["encoder.extra_head.weight"] = torch.zeros(2)
    path = tmp_path / "bad_keys.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        build_beats(path, size="tiny")
    message = str(info.value)
    assert "encoder.layers.1.fc2.weight" in message and "missing" in message
    assert "encoder.extra_head.weight" in message and "unexpected" in message
    assert str(path) in message and OFFICIAL_URL in message


def test_wrong_shape_is_a_checkpoint_error(tiny_checkpoint, tmp_path):
    _, source = tiny_checkpoint
    payload = torch.load(source, map_location="cpu", weights_only=True)
    payload["model"]["encoder.layers.0.fc1.bias"] = torch.zeros(7)
    path = tmp_path / "bad_shape.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        build_beats(path, size="tiny")


def test_size_mismatch_names_both(tiny_checkpoint):
    _, path = tiny_checkpoint
    with pytest.raises(CheckpointError, match=r"size='base'.*'tiny'"):
        build_beats(path, size="base")


def test_weights_only_loading(tiny_checkpoint, tmp_path, monkeypatch):
    _, path = tiny_checkpoint
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    build_beats(path, size="tiny")
    assert calls and all(c.get("weights_only") is True for c in calls)
    monkeypatch.setattr(torch, "load", real_load)
    # A pickle holding arbitrary objects is refused, not executed.
    evil = tmp_path / "pickled_object.pt"
    torch.save({"cfg": argparse.Namespace(a=1), "model": {}}, evil)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        build_beats(evil, size="tiny")


def test_no_random_fallback_and_bad_size(tmp_path):
    with pytest.raises(CheckpointError):
        build_beats(str(tmp_path / "nope.pt"), size="tiny")
    with pytest.raises(ValueError, match="size"):
        build_beats(size="large")
