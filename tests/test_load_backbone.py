"""``load_backbone``: dispatch, seeded random stand-ins, checkpoint errors, no silent fallback."""

from __future__ import annotations

import pytest
import torch

from asd_utils.backbones import BACKBONE_NAMES, Backbone, CheckpointError, load_backbone
from asd_utils.backbones.errors import PUBLISHED_AT


def test_exports():
    assert BACKBONE_NAMES == ("beats", "eat", "hubert", "wav2vec2", "wavlm", "unispeech_sat")
    assert issubclass(CheckpointError, ValueError)


def test_unknown_name_lists_known_ones():
    with pytest.raises(
        ValueError, match="unknown backbone 'bert'.*beats, eat, hubert, wav2vec2, wavlm, unispeech_sat"
    ):
        load_backbone("bert")


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_random_tiny_contract(name):
    model = load_backbone(name, size="tiny", seed=5)
    assert isinstance(model, Backbone) and model.name == name and model.size == "tiny"
    assert model.pretrained is False and model.checkpoint_sha256 is None and model.init_seed == 5
    assert not model.training
    with torch.inference_mode():
        hs = model.hidden_states(torch.zeros(2, 16000).normal_(0, 0.1))
    assert len(hs) == model.num_layers + 1
    assert all(h.dim() == 3 and h.shape[0] == 2 and h.shape[2] == model.dim for h in hs)


@pytest.mark.parametrize("name", ["beats", "eat", "wavlm"])
def test_seed_makes_random_weights_reproducible(name):
    a = load_backbone(name, size="tiny", seed=7).state_dict()
    b = load_backbone(name, size="tiny", seed=7).state_dict()
    c = load_backbone(name, size="tiny", seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_missing_checkpoint_names_file_and_source(tmp_path, name):
    missing = tmp_path / "weights" / "absent.pt"
    with pytest.raises(CheckpointError) as info:
        load_backbone(name, missing, size="tiny")
    text = str(info.value)
    assert str(missing) in text and "does not exist" in text
    assert PUBLISHED_AT[name].split()[0] in text


@pytest.mark.parametrize("name", ["beats", "eat"])
def test_wrong_format_is_an_error_not_random_weights(tmp_path, name):
    junk = tmp_path / "model.pt"
    junk.write_bytes(b"PK\x03\x04 definitely not a torch checkpoint")
    with pytest.raises(CheckpointError, match="model.pt"):
        load_backbone(name, junk, size="tiny")
    torch.save({"hello": "world"}, junk)
    with pytest.raises(CheckpointError, match="model.pt"):
        load_backbone(name, junk, size="tiny")


def test_beats_checkpoint_roundtrip(tmp_path):
    from asd_utils.backbones.beats import save_beats_checkpoint

    model = load_backbone("beats", size="tiny", seed=3)
    path = save_beats_checkpoint(model, tmp_path / "BEATs_tiny.pt")
    loaded = load_backbone("beats", path, size="tiny")
    assert loaded.pretrained and len(loaded.checkpoint_sha256) == 64
    waves = torch.zeros(1, 16000).normal_(0, 0.1)
    with torch.inference_mode():
        for a, b in zip(model.hidden_states(waves), loaded.hidden_states(waves)):
            torch.testing.assert_close(a, b, atol=0.0, rtol=0.0)


def test_unavailable_cuda_is_reported():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        load_backbone("eat", size="tiny", device="cuda")


def test_configured_size_and_layer_prefers_the_checkpoint_architecture():
    from asd_utils.backbones import configured_size_and_layer

    section = {"size": "tiny", "layer": 1, "checkpoint_size": "base", "checkpoint_layer": 5}
    assert configured_size_and_layer(section, None) == ("tiny", 1)
    assert configured_size_and_layer(section, "/ckpt/BEATs_iter3_plus_AS2M.pt") == ("base", 5)
    assert configured_size_and_layer({"size": "tiny", "layer": -1}, "x.pt") == ("base", -1)
