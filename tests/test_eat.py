"""EAT encoder: official-forward golden values, front end, architecture, both released checkpoint
formats, error cases."""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from asd_utils.backbones import CheckpointError, load_backbone
from asd_utils.backbones import eat as eat_module
from asd_utils.backbones.eat import (
    DROP_RULES,
    EAT_SIZES,
    build_eat,
    eat_preprocess,
    remap_eat_keys,
    save_eat_hf,
    sincos_pos_embed_2d,
)
from asd_utils.storage.keys import file_sha256

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN_PT = FIXTURES / "eat_tiny_official.pt"
GOLDEN_NPZ = FIXTURES / "eat_tiny_official.npz"
GOLDEN_ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny():
    return build_eat(size="tiny", seed=3)


@pytest.fixture(scope="module")
def waves():
    gen = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(2, 16000, generator=gen)


def _outputs(model, waves):
    with torch.inference_mode():
        return model.hidden_states(waves)


def _assert_same(a, b, atol=0.0):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=atol, rtol=0.0)


# ----------------------------------------------------------------------------------------------
# the official forward pass (tests/fixtures/eat_tiny_official.*, made by scripts/make_eat_golden.py
# running the official EAT code vendored in ASDKit on a random tiny checkpoint in the fairseq format)


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN_NPZ) as data:
        return {key: data[key] for key in data.files}


def _golden_model(golden, checkpoint=GOLDEN_PT):
    return load_backbone("eat", checkpoint, size="tiny", target_length=int(golden["target_length"]))


def _max_error_per_layer(model, golden) -> list[float]:
    states = _outputs(model, torch.from_numpy(golden["waves"]))
    return [float(np.abs(s.numpy() - golden[f"hidden_{i}"]).max()) for i, s in enumerate(states)]


def test_matches_official_forward_on_every_layer(golden):
    """From the waveform: ASDKit's front end (mean removal, fbank, zero padding to
    ceil(frames / 32) * 32 = 128 frames, (x + 4.268) / (2 * 4.569)), then the encoder, every layer."""
    model = _golden_model(golden)
    waves = torch.from_numpy(golden["waves"])
    assert waves.shape == (2, 16000) and int(golden["target_length"]) == 128
    with torch.inference_mode():
        image = model.preprocess(waves)
        states = model.hidden_states(waves)
    np.testing.assert_allclose(image.numpy(), golden["image"], atol=1e-6, rtol=0)
    assert len(states) == model.num_layers + 1 == 3
    for i, state in enumerate(states):
        reference = golden[f"hidden_{i}"]
        assert state.shape == reference.shape == (2, 1 + 8 * 8, 64)
        np.testing.assert_allclose(state.numpy(), reference, atol=GOLDEN_ATOL, rtol=0, err_msg=f"hidden state {i}")
    # the reference is not degenerate: clips, tokens and layers all differ by far more than the tolerance
    last = golden["hidden_2"]
    assert np.abs(last[0] - last[1]).max() > 0.5 and last.std(axis=1).min() > 0.1
    assert min(np.abs(golden["hidden_1"] - golden[f"hidden_{i}"]).max() for i in (0, 2)) > 0.5


def test_golden_checkpoint_is_in_the_released_fairseq_format(golden):
    payload_globals = torch.serialization.get_unsafe_globals_in_checkpoint(GOLDEN_PT)
    # fairseq pickles cfg with OmegaConf.to_container, which keeps EAT's config enums
    assert sorted(payload_globals) == ["EAT.models.EAT_pretraining.Modality", "EAT.models.images.Modality"]
    with pytest.raises(pickle.UnpicklingError):  # so plain weights_only=True refuses it
        torch.load(GOLDEN_PT, weights_only=True)
    payload = eat_module.safe_torch_load(GOLDEN_PT)
    assert {"args", "cfg", "model", "optimizer_history", "extra_state"} <= set(payload)
    assert payload["cfg"]["model"]["_name"] == "data2vec_multi"
    assert payload["cfg"]["model"]["layer_norm_first"] is False
    state = payload["model"]
    assert state["modality_encoders.IMAGE.fixed_positional_encoder.positions"].shape == (1, 16 * 8, 64)
    assert "modality_encoders.IMAGE.decoder.proj.weight" in state  # pre-training decoder, dropped by rule
    model = _golden_model(golden)
    assert model.pretrained and model.checkpoint_sha256 == file_sha256(GOLDEN_PT)
    # 4 heads come from cfg (without it the loader would assume 64-d heads, i.e. 1 head here)
    assert (model.config.num_heads, model.num_layers, model.dim) == (4, 2, 64)


def test_official_position_table_equals_ours():
    """The released fixed sin-cos table (official get_2d_sincos_pos_embed_flexible) is what
    sincos_pos_embed_2d computes for random-init models and HF exports."""
    state = eat_module.safe_torch_load(GOLDEN_PT)["model"]
    official = state["modality_encoders.IMAGE.fixed_positional_encoder.positions"][0]
    torch.testing.assert_close(official, sincos_pos_embed_2d(64, (16, 8)), atol=1e-6, rtol=0)


def test_golden_weights_in_hf_and_finetuned_layouts(golden, tmp_path):
    """The same official weights under the Hugging Face port's names (``modality_encoders.IMAGE.X``
    -> ``model.X``, ``context_encoder.norm`` -> ``model.pre_norm``, ``blocks`` -> ``model.blocks``)
    and as a fairseq fine-tuned checkpoint (``model.`` prefix + classifier) give the official
    outputs too."""
    payload = eat_module.safe_torch_load(GOLDEN_PT)
    official = {k: v for k, v in payload["model"].items() if ".decoder." not in k}
    hf = {}
    for key, value in official.items():
        key = key.replace("modality_encoders.IMAGE.context_encoder.norm.", "pre_norm.")
        key = key.replace("modality_encoders.IMAGE.", "")
        hf["model." + key] = value.contiguous()
    folder = tmp_path / "hf"
    folder.mkdir()
    save_file(hf, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"model_type": "eat", "num_heads": 4, "layer_norm_first": false}')
    finetuned = {"model." + k: v for k, v in official.items()}
    finetuned.update({"fc_norm.weight": torch.ones(64), "fc_norm.bias": torch.zeros(64)})
    finetuned.update({"head.weight": torch.zeros(527, 64), "head.bias": torch.zeros(527)})
    ft_cfg = {"model": {"_name": "mae_image_classification", "pretrained_model_args": {"model": {"num_heads": 4}}}}
    torch.save({"args": None, "cfg": ft_cfg, "model": finetuned}, tmp_path / "EAT-tiny_finetuned.pt")
    for checkpoint in (folder, tmp_path / "EAT-tiny_finetuned.pt"):
        errors = _max_error_per_layer(_golden_model(golden, checkpoint), golden)
        assert max(errors) < GOLDEN_ATOL, (checkpoint, errors)


def _pre_norm_blocks(model):
    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    for block in model.blocks:
        block.forward = forward.__get__(block)


def _no_positions(model):
    model.pos_embed.zero_()


def _time_frequency_halves_swapped(model):
    half = model.dim // 2
    model.pos_embed.copy_(torch.cat([model.pos_embed[..., half:], model.pos_embed[..., :half]], dim=-1))


def _frequency_major_tokens(model):
    def embed(image):
        x = model.patch_embed(image).transpose(2, 3).flatten(2).transpose(1, 2)
        x = x + model.pos_embed[:, : x.shape[1]]
        return model.embed_norm(torch.cat([model.cls_token.expand(x.shape[0], -1, -1), x], dim=1))

    model.embed = embed


def _no_input_norm(model):
    model.embed_norm = nn.Identity()


def _one_head(model):
    for block in model.blocks:
        block.attn.num_heads = 1


def _normalised_by_std_not_two_std(model):
    model.config = dataclasses.replace(model.config, norm_std=model.config.norm_std / 2)


@pytest.mark.parametrize(
    "perturb",
    [
        _pre_norm_blocks,
        _no_positions,
        _time_frequency_halves_swapped,
        _frequency_major_tokens,
        _no_input_norm,
        _one_head,
        _normalised_by_std_not_two_std,
    ],
)
def test_golden_is_sensitive_to_each_structural_choice(golden, perturb):
    """Changing one choice of the architecture or front end moves the output by far more than the
    1e-4 tolerance, so the golden match above pins each of them down."""
    model = _golden_model(golden)
    assert max(_max_error_per_layer(model, golden)) < GOLDEN_ATOL
    with torch.no_grad():
        perturb(model)
    assert max(_max_error_per_layer(model, golden)) > 100 * GOLDEN_ATOL


def test_only_eat_config_enums_are_inert():
    pattern = eat_module._EAT_CONFIG_ENUMS
    for name in (
        "EAT.models.EAT_pretraining.Modality",
        "x.EAT.models.images.Modality",
        "EAT-main.models.EAT_audio_classification.PredictionMode",
    ):
        assert pattern.search(name), name
    for name in ("EAT.models.EAT_pretraining.Data2VecMultiModel", "os.system", "EAT.models.utils.Modality"):
        assert not pattern.search(name), name


# ----------------------------------------------------------------------------------------------
# front end and architecture


def test_sincos_layout():
    d, grid = 16, (3, 2)
    pe = sincos_pos_embed_2d(d, grid)
    assert pe.shape == (6, 16)
    omega = 1.0 / 10000 ** (torch.arange(4, dtype=torch.float64) / 4)
    t, f = 2, 1
    row = pe[t * 2 + f].double()
    torch.testing.assert_close(row[:4], torch.sin(f * omega), atol=1e-6, rtol=0)
    torch.testing.assert_close(row[4:8], torch.cos(f * omega), atol=1e-6, rtol=0)
    torch.testing.assert_close(row[8:12], torch.sin(t * omega), atol=1e-6, rtol=0)
    torch.testing.assert_close(row[12:], torch.cos(t * omega), atol=1e-6, rtol=0)


def test_preprocess_matches_torchaudio_golden():
    gold = np.load(FIXTURES / "kaldi_fbank_golden.npz")
    wave = torch.from_numpy(gold["machine_wave"]).unsqueeze(0)
    image = eat_preprocess(wave, EAT_SIZES["tiny"])
    assert image.shape == (1, 1, 1024, 128)
    ref = (gold["machine_eat_fbank"] + 4.268) / (2 * 4.569)
    frames = ref.shape[0]
    np.testing.assert_allclose(image[0, 0, :frames].numpy(), ref, atol=1e-3 / 9.0)
    pad = image[0, 0, frames:]  # zero fbank rows, then normalised
    torch.testing.assert_close(pad, torch.full_like(pad, 4.268 / (2 * 4.569)))


def test_hidden_states_tiny(tiny, waves):
    hs = _outputs(tiny, waves)
    assert len(hs) == tiny.num_layers + 1 == 3
    assert all(h.shape == (2, 513, 64) for h in hs)
    with torch.inference_mode():
        entry0 = tiny.embed(tiny.preprocess(waves))
        torch.testing.assert_close(hs[0], entry0)
        torch.testing.assert_close(hs[1], tiny.blocks[0](entry0))
    # entry 0 is after the input LayerNorm: per-token zero mean (unit weights, zero bias at init)
    torch.testing.assert_close(hs[0].mean(-1), torch.zeros(2, 513), atol=1e-5, rtol=0)


def test_crop_longer_clips(tiny):
    long = torch.zeros(1, 16000 * 12)
    assert eat_preprocess(long, tiny.config).shape == (1, 1, 1024, 128)
    assert _outputs(tiny, long)[-1].shape == (1, 513, 64)


def test_a_long_clip_keeps_its_first_frames():
    """A 440 Hz tone whose loudness ramps up over 3 s (so every 10 ms frame has its own energy),
    preprocessed to 128 frames (1.28 s): the image is the first 128 fbank frames of the whole clip,
    as the official front end crops (``fbank[:target_length]``), not the last ones."""
    from asd_utils.features.fbank import eat_fbank

    config = dataclasses.replace(EAT_SIZES["tiny"], target_length=128)
    t = torch.arange(3 * 16000, dtype=torch.float32) / 16000
    ramp = (0.01 + 0.3 * t / 3) * torch.sin(2 * torch.pi * 440.0 * t)
    image = eat_preprocess(ramp[None], config)[0, 0]
    fbank = eat_fbank(ramp[None])[0]
    assert fbank.shape[0] == 298  # 3 s in 25 ms frames every 10 ms
    torch.testing.assert_close(image, (fbank[:128] - config.norm_mean) / (2 * config.norm_std))
    energy = image.max(dim=1).values  # the tone's mel band
    assert torch.all(energy[10:] > energy[:-10])  # louder every 100 ms: the frames are distinguishable
    # the last 128 frames are louder than any kept frame: a crop from the end would show it
    last_frames = (fbank[-128:].max(dim=1).values - config.norm_mean) / (2 * config.norm_std)
    assert float(last_frames.min()) > float(energy.max())


def test_seeded_random_init_is_reproducible():
    a, b, c = build_eat(size="tiny", seed=1), build_eat(size="tiny", seed=1), build_eat(size="tiny", seed=2)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.blocks[0].attn.qkv.weight, c.blocks[0].attn.qkv.weight)
    assert a.pretrained is False and a.checkpoint_sha256 is None


@pytest.mark.slow  # a base-size EAT on a 10 s clip
def test_base_config_10s_shapes():
    """The published base size: 12 layers, 768-d, 12 heads, 512 patches + CLS for 10 s (run once)."""
    model = build_eat(size="base")
    assert (model.num_layers, model.dim, model.config.num_heads) == (12, 768, 12)
    assert model.config.num_patches == 512
    hs = _outputs(model, torch.zeros(1, 160000).normal_(0, 0.1))
    assert len(hs) == 13
    assert all(h.shape == (1, 513, 768) for h in hs)


# ----------------------------------------------------------------------------------------------
# Hugging Face format


@pytest.mark.parametrize("variant", ["folder", "safetensors_file", "pytorch_bin", "finetuned"])
def test_hf_roundtrip(tmp_path, tiny, waves, variant):
    folder = save_eat_hf(
        tiny, tmp_path / "hf", max_length=96, finetune_classes=5 if variant == "finetuned" else 0
    )
    state = load_file(str(folder / "model.safetensors"))
    assert all(k.startswith("model.") for k in state)
    assert state["model.fixed_positional_encoder.positions"].shape == (1, 96 * 8, 64)
    ckpt = folder
    if variant == "safetensors_file":
        ckpt = folder / "model.safetensors"
    elif variant == "pytorch_bin":
        (folder / "model.safetensors").unlink()
        torch.save(state, folder / "pytorch_model.bin")
    loaded = load_backbone("eat", ckpt, size="tiny")
    assert loaded.pretrained and len(loaded.checkpoint_sha256) == 64
    _assert_same(_outputs(tiny, waves), _outputs(loaded, waves))


# ----------------------------------------------------------------------------------------------
# fairseq format


def _fairseq_state(model, *, finetuned=False):
    """``model``'s weights under the fairseq Data2VecMultiModel names, plus teacher/decoder keys."""
    state = {}
    for key, value in model.state_dict().items():
        new = key
        new = new.replace("patch_embed.", "modality_encoders.IMAGE.local_encoder.proj.")
        new = new.replace("embed_norm.", "modality_encoders.IMAGE.context_encoder.norm.")
        if key == "cls_token":
            new = "modality_encoders.IMAGE.extra_tokens"
        if key == "pos_embed":
            new = "modality_encoders.IMAGE.fixed_positional_encoder.positions"
        state[new] = value.clone()
    dim = model.dim
    if finetuned:
        state = {f"model.{k}": v for k, v in state.items()}
        state["fc_norm.weight"] = torch.ones(dim)
        state["fc_norm.bias"] = torch.zeros(dim)
        state["head.weight"] = torch.randn(527, dim)
        state["head.bias"] = torch.zeros(527)
    else:
        state["_ema"] = {k: v.clone() + 1.0 for k, v in model.state_dict().items() if k.startswith("blocks.")}
        state["modality_encoders.IMAGE.decoder.blocks.0.0.weight"] = torch.randn(dim, 4, 3, 3)
        state["modality_encoders.IMAGE.decoder.proj.weight"] = torch.randn(dim, dim)
    return state


@pytest.fixture
def fake_config_modules(monkeypatch):
    """Classes that pickle as omegaconf / fairseq globals, as real fairseq checkpoints do; the
    modules are removed again before loading (the loader must not need them)."""
    made = {}
    for module_name, class_name in [
        ("omegaconf", None),
        ("omegaconf.dictconfig", "DictConfig"),
        ("omegaconf.nodes", "AnyNode"),
        ("fairseq", None),
        ("fairseq.dataclass", None),
        ("fairseq.dataclass.configs", "FairseqConfig"),
    ]:
        module = types.ModuleType(module_name)
        if class_name:
            cls = type(class_name, (), {"__module__": module_name})
            setattr(module, class_name, cls)
            made[class_name] = cls
        monkeypatch.setitem(sys.modules, module_name, module)
    return made, monkeypatch


def _save_fairseq(path, state, fake):
    made, monkeypatch = fake
    node = made["AnyNode"]()
    node.__dict__.update({"_val": 4, "_metadata": None})
    model_cfg = made["DictConfig"]()
    model_cfg.__dict__.update({"_content": {"num_heads": node, "layer_norm_first": False}})
    cfg = made["DictConfig"]()
    cfg.__dict__.update({"_content": {"model": model_cfg}})
    payload = {
        "args": argparse.Namespace(arch="data2vec_multi"),
        "cfg": cfg,
        "model": state,
        "optimizer_history": [{"criterion_name": "ModelCriterion", "num_updates": 10}],
        "extra_state": {"epoch": 30, "train_config": made["FairseqConfig"]()},
        "last_optimizer_state": None,
    }
    torch.save(payload, path)
    for name in (
        "omegaconf",
        "omegaconf.dictconfig",
        "omegaconf.nodes",
        "fairseq",
        "fairseq.dataclass",
        "fairseq.dataclass.configs",
    ):
        monkeypatch.delitem(sys.modules, name)
    return path


@pytest.mark.parametrize("finetuned", [False, True])
def test_fairseq_roundtrip(tmp_path, tiny, waves, fake_config_modules, finetuned):
    path = _save_fairseq(
        tmp_path / "EAT-tiny.pt", _fairseq_state(tiny, finetuned=finetuned), fake_config_modules
    )
    with pytest.raises(pickle.UnpicklingError):  # plain weights_only=True refuses the config objects
        torch.load(path, weights_only=True)
    loaded = load_backbone("eat", path, size="tiny")
    assert loaded.pretrained and loaded.config.num_heads == 4
    _assert_same(_outputs(tiny, waves), _outputs(loaded, waves))


_SIDE_EFFECTS: list[str] = []


def _evil(tag):
    _SIDE_EFFECTS.append(tag)
    return tag


class _Evil:
    def __reduce__(self):
        return (_evil, ("ran",))


def test_fairseq_refuses_unknown_globals(tmp_path, tiny):
    path = tmp_path / "evil.pt"
    torch.save({"model": _fairseq_state(tiny, finetuned=True), "cfg": {"x": _Evil()}}, path)
    with pytest.raises(CheckpointError, match="not allowed.*_evil"):
        load_backbone("eat", path, size="tiny")
    assert _SIDE_EFFECTS == []


def test_remap_rules():
    t = torch.zeros(1)
    state = {
        "modality_encoders.IMAGE.local_encoder.proj.weight": t,
        "modality_encoders.IMAGE.extra_tokens": t,
        "modality_encoders.IMAGE.fixed_positional_encoder.positions": t,
        "modality_encoders.IMAGE.context_encoder.norm.bias": t,
        "modality_encoders.IMAGE.decoder.proj.weight": t,
        "blocks.3.attn.qkv.weight": t,
        "_ema": {},
        "recon_proj.weight": t,
    }
    out, dropped = remap_eat_keys(state)
    assert sorted(out) == [
        "blocks.3.attn.qkv.weight",
        "cls_token",
        "embed_norm.bias",
        "patch_embed.weight",
        "pos_embed",
    ]
    assert sorted(dropped) == ["_ema", "modality_encoders.IMAGE.decoder.proj.weight", "recon_proj.weight"]
    hf, _ = remap_eat_keys(
        {"model.local_encoder.proj.bias": t, "model.pre_norm.weight": t, "model.head.bias": t}
    )
    assert sorted(hf) == ["embed_norm.weight", "patch_embed.bias"]
    assert any("ema" in rule for rule in DROP_RULES)


# ----------------------------------------------------------------------------------------------
# errors


def test_error_missing_key(tmp_path, tiny):
    folder = save_eat_hf(tiny, tmp_path / "hf")
    state = load_file(str(folder / "model.safetensors"))
    del state["model.blocks.1.mlp.fc2.bias"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys.*blocks\.1\.mlp\.fc2\.bias"):
        load_backbone("eat", folder, size="tiny")


def test_error_unexpected_key(tmp_path, tiny):
    folder = save_eat_hf(tiny, tmp_path / "hf")
    state = load_file(str(folder / "model.safetensors"))
    state["model.alibi_scale"] = torch.ones(1)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected keys.*alibi_scale"):
        load_backbone("eat", folder, size="tiny")


def test_error_size_mismatch(tmp_path, tiny):
    folder = save_eat_hf(tiny, tmp_path / "hf")
    with pytest.raises(CheckpointError, match="2 layers, 64-d.*size='base'"):
        load_backbone("eat", folder, size="base")


def test_error_not_an_eat_checkpoint(tmp_path):
    from asd_utils.backbones.beats import build_beats, save_beats_checkpoint

    path = save_beats_checkpoint(build_beats(size="tiny"), tmp_path / "beats.pt")
    with pytest.raises(CheckpointError, match="does not look like an EAT checkpoint"):
        load_backbone("eat", path, size="tiny")


def test_error_missing_and_malformed(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt.*does not exist.*cwx-worst-one/EAT"):
        load_backbone("eat", tmp_path / "nope.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither model.safetensors nor pytorch_model.bin"):
        load_backbone("eat", tmp_path / "empty")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_backbone("eat", junk)
    with pytest.raises(ValueError, match="unknown size"):
        build_eat(size="huge")
