"""The notebooks' methods treat a pretrained stand-in checkpoint (``asd_utils.pretrain.standins``)
like an untrained stand-in where input sizing is concerned (EAT ``target_length: auto`` follows the
clip / crop), like a real checkpoint where weights are concerned (loaded, labelled "stand-in
pretrained by the compendium on synthetic audio"), and never share a cache entry with the untrained
stand-in (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asd_utils.backbones import CheckpointError, load_backbone
from asd_utils.backbones.embeddings import backbone_identity
from asd_utils.backbones.provenance import (
    PUBLISHED,
    STANDIN_PRETRAINED,
    UNTRAINED,
    backbone_provenance,
    checkpoint_provenance,
)
from asd_utils.methods import anopatch, ioa, myps, xju

SR = 16000
PRETRAIN_FRAMES = 256  # the stand-ins' pretraining crop (configs/standins.yaml: crop_frames)


def _fbank_frames(samples: int) -> int:
    """Kaldi fbank frames (25 ms window, 10 ms shift, snip edges) of ``samples`` at 16 kHz."""
    return 1 + (samples - 400) // 160


@pytest.fixture(scope="module")
def eat_checkpoints(tmp_path_factory):
    """``(stand-in folder, published folder)``: the same tiny EAT weights, once with the stand-in
    marker (as ``standin_checkpoint`` writes it) and once in the plain published layout."""
    from asd_utils.backbones.eat import save_eat_hf
    from asd_utils.pretrain.run import save_standin

    root = tmp_path_factory.mktemp("eat_ckpts")
    model = load_backbone("eat", size="tiny", seed=3, target_length=PRETRAIN_FRAMES)
    with torch.no_grad():  # "pretrained": weights no seed of the untrained stand-in gives
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    marker = {"provenance": STANDIN_PRETRAINED, "model": "eat", "config": {"size": "tiny"}}
    standin = save_standin("eat", model, root / "standin", marker=marker,
                           check_with={"target_length": PRETRAIN_FRAMES})
    published = save_eat_hf(model, root / "published", max_length=64)
    return standin, published


@pytest.fixture(scope="module")
def beats_standin(tmp_path_factory):
    from asd_utils.pretrain.run import save_standin

    model = load_backbone("beats", size="tiny", seed=5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    marker = {"provenance": STANDIN_PRETRAINED, "model": "beats", "config": {"size": "tiny"}}
    return save_standin("beats", model, tmp_path_factory.mktemp("beats_ckpt"), marker=marker)


def test_fixture_checkpoints_have_the_expected_provenance(eat_checkpoints, beats_standin):
    standin, published = eat_checkpoints
    assert checkpoint_provenance(standin) == STANDIN_PRETRAINED
    assert checkpoint_provenance(beats_standin) == STANDIN_PRETRAINED
    assert checkpoint_provenance(published) == PUBLISHED
    assert checkpoint_provenance(None) == UNTRAINED


# ---------------------------------------------------------------------------------------------
# EAT target_length: auto
# ---------------------------------------------------------------------------------------------
ANOPATCH_CFG = {"backbone": "eat", "size": "tiny", "checkpoint_size": "tiny", "layer": -1, "target_length": "auto",
                "emb_dim": 8, "attention_dim": 4}


def test_anopatch_sizes_a_standin_eat_to_the_clip_like_an_untrained_one(eat_checkpoints):
    standin, published = eat_checkpoints
    clip = 2 * SR  # 198 fbank frames -> 192 (a multiple of 16)
    assert _fbank_frames(clip) == 198
    untrained = anopatch.build_model(ANOPATCH_CFG, checkpoint=None, clip_samples=clip)
    pretrained = anopatch.build_model(ANOPATCH_CFG, checkpoint=str(standin), clip_samples=clip)
    real = anopatch.build_model(ANOPATCH_CFG, checkpoint=str(published), clip_samples=clip)
    assert untrained.backbone.config.target_length == 192
    assert pretrained.backbone.config.target_length == 192
    assert real.backbone.config.target_length == 1024  # a published checkpoint keeps its own length
    assert backbone_provenance(untrained.backbone) == UNTRAINED
    assert backbone_provenance(pretrained.backbone) == STANDIN_PRETRAINED
    assert backbone_provenance(real.backbone) == PUBLISHED
    # the stand-in's weights were loaded (not re-initialised): same encoder as the published copy
    a, b = pretrained.backbone.state_dict(), real.backbone.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k != "pos_embed")
    assert torch.equal(a["pos_embed"], b["pos_embed"][:, : a["pos_embed"].shape[1]])
    with torch.inference_mode():
        out = pretrained.eval()(torch.zeros(2, clip))
    assert out.shape == (2, 8)


def test_anopatch_refuses_a_clip_longer_than_the_standin_positions(eat_checkpoints):
    standin, _ = eat_checkpoints
    clip = 12 * SR  # 1198 frames -> 1184 > the 1024 frames the stand-in's positional table covers
    with pytest.raises(CheckpointError, match=r"positional table.*target_length=1184"):
        anopatch.build_model(ANOPATCH_CFG, checkpoint=str(standin), clip_samples=clip)


MYPS_EAT_CFG = {"backbone": "eat", "size": "tiny", "checkpoint_size": "tiny", "layer": -1, "target_length": "auto"}


def test_myps_sizes_a_standin_eat_to_the_crop(eat_checkpoints):
    standin, published = eat_checkpoints
    crop = SR  # 98 frames -> 96
    untrained, layer = myps.build_backbone(MYPS_EAT_CFG, checkpoint=None, crop_samples=crop)
    pretrained, layer_s = myps.build_backbone(MYPS_EAT_CFG, checkpoint=str(standin), crop_samples=crop)
    real, _ = myps.build_backbone(MYPS_EAT_CFG, checkpoint=str(published), crop_samples=crop)
    lengths = (untrained.config.target_length, pretrained.config.target_length, real.config.target_length)
    assert lengths == (96, 96, 1024)
    assert layer == layer_s == -1
    assert backbone_provenance(pretrained) == STANDIN_PRETRAINED
    with pytest.raises(CheckpointError, match=r"positional table.*target_length=1184"):
        myps.build_backbone(MYPS_EAT_CFG, checkpoint=str(standin), crop_samples=12 * SR)


XJU_MODEL_CFG = {"backbones": {
    "beats": {"size": "tiny", "checkpoint_size": "tiny", "layer": -1, "pooling": "mean"},
    "eat": {"size": "tiny", "checkpoint_size": "tiny", "layer": -1, "pooling": "cls", "target_length": "auto"}}}


def test_xju_sizes_a_standin_eat_to_the_crop(eat_checkpoints, beats_standin):
    standin, published = eat_checkpoints
    crop = 3 * SR  # 298 frames -> 288
    loaded = xju.load_backbones("EAT-BEATs", XJU_MODEL_CFG, {"eat": str(standin), "beats": str(beats_standin)},
                                crop_samples=crop)
    assert loaded["eat"].config.target_length == 288
    assert {n: backbone_provenance(b) for n, b in loaded.items()} == {"eat": STANDIN_PRETRAINED,
                                                                      "beats": STANDIN_PRETRAINED}
    untrained = xju.load_backbones("EAT-FFT", XJU_MODEL_CFG, {"eat": None}, crop_samples=crop)
    assert untrained["eat"].config.target_length == 288 and backbone_provenance(untrained["eat"]) == UNTRAINED
    real = xju.load_backbones("EAT-FFT", XJU_MODEL_CFG, {"eat": str(published)}, crop_samples=crop)
    assert real["eat"].config.target_length == 1024
    with pytest.raises(CheckpointError, match=r"positional table.*target_length=1184"):
        xju.load_backbones("EAT-FFT", XJU_MODEL_CFG, {"eat": str(standin)}, crop_samples=12 * SR)


# ---------------------------------------------------------------------------------------------
# cache keys: a pretrained stand-in never reuses the untrained stand-in's runs
# ---------------------------------------------------------------------------------------------
def test_backbone_identity_separates_untrained_and_pretrained_standins(eat_checkpoints, beats_standin):
    standin, _ = eat_checkpoints
    for name, ckpt, kwargs in (("eat", standin, {"target_length": 96}), ("beats", beats_standin, {})):
        untrained = backbone_identity(load_backbone(name, size="tiny", **kwargs))
        pretrained = backbone_identity(load_backbone(name, checkpoint=ckpt, size="tiny", **kwargs))
        assert untrained["weights"].startswith("random-init-seed-")
        assert pretrained["weights"].startswith("sha256-")
        assert untrained["state"] != pretrained["state"] and untrained != pretrained
        # and it is a key, not a coincidence: the same stand-in gives the same identity
        assert pretrained == backbone_identity(load_backbone(name, checkpoint=ckpt, size="tiny", **kwargs))


def test_anopatch_run_dir_differs_between_untrained_and_pretrained_standin(eat_checkpoints, tmp_path):
    standin, _ = eat_checkpoints
    clip = 2 * SR
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(name.encode())
    common = {"paths": [tmp_path / "a.wav", tmp_path / "b.wav"], "clip_samples": clip, "seed": 0,
              "classes": ["x", "y"]}

    def run_dir(checkpoint):
        model = anopatch.build_model(ANOPATCH_CFG, checkpoint=checkpoint, clip_samples=clip)
        return anopatch.training_run_dir(tmp_path, ANOPATCH_CFG, checkpoint=checkpoint, backbone=model.backbone,
                                         **common)

    untrained, pretrained = run_dir(None), run_dir(str(standin))
    assert untrained.parent == pretrained.parent == tmp_path
    assert untrained != pretrained
    assert run_dir(None) == untrained and run_dir(str(standin)) == pretrained  # deterministic keys
    assert anopatch.training_run_dir(None, ANOPATCH_CFG, checkpoint=None, backbone=None, **common) is None


def test_xju_and_ioa_run_dirs_differ_between_untrained_and_pretrained_standin(eat_checkpoints, tmp_path):
    standin, _ = eat_checkpoints
    crop = SR
    waves, labels = np.zeros((2, crop), np.float32), np.array([0, 1])
    dirs = {}
    for label, ckpt in (("untrained", None), ("pretrained", str(standin))):
        backbones = xju.load_backbones("EAT-FFT", XJU_MODEL_CFG, {"eat": ckpt}, crop_samples=crop)
        dirs[("xju", label)] = xju.training_run_dir(
            tmp_path, "EAT-FFT", model_cfg=XJU_MODEL_CFG, train_cfg={"steps": 1}, backbones=backbones,
            crop_samples=crop, seed=0, classes=["x", "y"], waves=waves, labels=labels)
        dirs[("ioa", label)] = ioa.training_run_dir(tmp_path, "finetune_eat", cfg={"size": "tiny"}, seed=0,
                                                    classes=["x", "y"], waves=waves, labels=labels,
                                                    backbone=backbones["eat"])
    assert dirs[("xju", "untrained")] != dirs[("xju", "pretrained")]
    assert dirs[("ioa", "untrained")] != dirs[("ioa", "pretrained")]
