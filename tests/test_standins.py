"""Issue 14: pretrained stand-ins are saved in the published formats, reload strictly with
identical hidden states, say where they came from, and the hook pretrains only where asked."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from asd_utils.backbones import CheckpointError, configured_size_and_layer, load_backbone
from asd_utils.backbones.provenance import (
    PUBLISHED,
    STANDIN_PRETRAINED,
    UNTRAINED,
    backbone_provenance,
    is_standin_checkpoint,
)
from asd_utils.pretrain import standins
from asd_utils.pretrain.standins import standin_checkpoint

TINY = {
    "beats": dict(size="tiny", steps=3, batch_size=4, crop_frames=64, codebook_size=16, code_dim=8, eval_every=2,
                  tokenizer_fit_clips=8, warmup_steps=1),
    "eat": dict(size="tiny", steps=3, batch_size=2, crop_frames=64, clone_batch=2, decoder_dim=32, mask_length=2,
                eval_every=2, warmup_steps=1),
    "wav2vec2": dict(size="tiny", steps=2, batch_size=2, crop_seconds=0.5, num_negatives=4,
                     num_codevectors_per_group=8, eval_every=1, warmup_steps=1),
}
PROBE = torch.randn(2, 16000, generator=torch.Generator().manual_seed(5)) * 0.1


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from asd_utils.synth.generate import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synth") / "root", "smoke", machines=["bearing"], workers=1,
                            progress=False)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """Caches under a temporary project root; the hook reads the tiny configs above."""
    monkeypatch.setenv("ASD_HOME", str(tmp_path))
    real = standins.standins_config

    def tiny_config(profile):
        cfg = real(profile)
        cfg["pretraining"] = {k: dict(v) for k, v in TINY.items()}
        return cfg

    monkeypatch.setattr(standins, "standins_config", tiny_config)
    return tmp_path


def test_corpus_holds_training_and_supplemental_clips_only(synth_root, tmp_path):
    from asd_utils.pretrain.corpus import build_corpus

    corpus = build_corpus(synth_root)
    splits = {p.split("/")[-2] for p in corpus.paths}
    assert splits == {"train", "supplemental"}
    assert len(corpus) == 16 + 4  # smoke profile: 12 + 4 training, 2 + 2 supplemental clips
    with pytest.raises(ValueError, match="not a synthetic root"):
        build_corpus(tmp_path)


def test_hook_never_pretrains_in_smoke_or_paper(monkeypatch, synth_root):
    from asd_utils.pretrain import run

    def boom(*args, **kwargs):
        raise AssertionError("pretraining must not run")

    monkeypatch.setattr(run, "pretrain_standin", boom)
    for profile in ("smoke", "paper"):
        for name in ("beats", "eat", "wav2vec2", "hubert", "wavlm", "unispeech_sat"):
            assert standin_checkpoint(name, profile=profile, data_root=synth_root) is None
    assert standins.standin_mode("beats", "paper") == "never"
    assert standins.standin_mode("beats", "smoke") == "untrained"
    assert standins.standin_mode("hubert", "default") == "untrained"
    assert standin_checkpoint("hubert", profile="default", data_root=synth_root) is None


@pytest.mark.parametrize("name", ["beats", "eat", "wav2vec2"])
def test_hook_pretrains_once_saves_published_format_and_reloads_identically(name, home, synth_root, monkeypatch):
    from asd_utils.pretrain import run

    assert standin_checkpoint(name, profile="default", data_root=synth_root, ensure=False) is None
    trained = {}
    real_save = run.save_standin

    def keep_model(name_, model, folder, **kwargs):
        trained["model"] = model
        return real_save(name_, model, folder, **kwargs)

    monkeypatch.setattr(run, "save_standin", keep_model)
    path = standin_checkpoint(name, profile="default", data_root=synth_root, progress=False)
    folder = path if path.is_dir() else path.parent
    assert folder.parent == home / "cache" / "pretrained_standins" and folder.name.startswith(f"{name}-")
    history = json.loads((folder / "history.json").read_text())
    assert len(history["loss"]) == TINY[name]["steps"] and history["cpu_seconds"] > 0
    assert not list(folder.parent.glob(".*.tmp-*"))  # written atomically: no leftovers
    # published layouts
    if name == "beats":
        payload = torch.load(path, map_location="cpu", weights_only=True)
        assert set(payload) == {"cfg", "model"}
        assert payload["cfg"]["compendium_standin"]["provenance"] == STANDIN_PRETRAINED
        fresh = load_backbone("beats", size="tiny")
        assert set(payload["model"]) == set(fresh.state_dict())  # encoder keys only, strict
    elif name == "eat":
        assert (path / "model.safetensors").is_file() and json.loads((path / "config.json").read_text())["depth"] == 2
    else:
        config = json.loads((path / "config.json").read_text())
        assert config["model_type"] == "wav2vec2" and config["architectures"] == ["Wav2Vec2ForPreTraining"]
        assert json.loads((path / "preprocessor_config.json").read_text())["do_normalize"] is True
    # reload through the same path a real checkpoint takes, strict, identical hidden states
    kwargs = {"target_length": TINY["eat"]["crop_frames"]} if name == "eat" else {}
    reloaded = load_backbone(name, checkpoint=path, size="tiny", **kwargs)
    model = trained["model"]
    reference = model if name != "wav2vec2" else _hf_encoder(model)
    with torch.inference_mode():
        for a, b in zip(reference.hidden_states(PROBE), reloaded.hidden_states(PROBE), strict=True):
            assert torch.equal(a, b)
    assert backbone_provenance(reloaded) == STANDIN_PRETRAINED
    assert reloaded.describe() == f"{name}-tiny ({STANDIN_PRETRAINED})"
    assert is_standin_checkpoint(path)
    # the stand-in size and layer apply to a stand-in checkpoint, not the published base size
    section = {"size": "base", "layer": 1, "checkpoint_size": "base", "checkpoint_layer": 5}
    assert configured_size_and_layer(section, path) == ("tiny", 1)  # the size it was pretrained at
    # second call: cached, no pretraining
    monkeypatch.setattr(run, "pretrain_standin", lambda *a, **k: pytest.fail("pretrained twice"))
    assert standin_checkpoint(name, profile="default", data_root=synth_root) == path


def _hf_encoder(model):
    from asd_utils.backbones.hf_speech import HFSpeechBackbone

    return HFSpeechBackbone("wav2vec2", model.wav2vec2, "tiny", True).eval()


def test_strict_reload_refuses_a_missing_weight(tmp_path):
    from asd_utils.pretrain.run import save_standin

    model = load_backbone("beats", size="tiny", seed=1)
    path = save_standin("beats", model, tmp_path / "s", marker={"provenance": STANDIN_PRETRAINED})
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["model"].pop("encoder.layer_norm.weight")
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="encoder.layer_norm.weight"):
        load_backbone("beats", checkpoint=tmp_path / "broken.pt", size="tiny")


def test_provenance_strings(tmp_path):
    from asd_utils.backbones.beats import save_beats_checkpoint

    untrained = load_backbone("beats", size="tiny")
    assert backbone_provenance(untrained) == UNTRAINED == "untrained stand-in"
    published = save_beats_checkpoint(untrained, tmp_path / "published.pt")  # the official format, no marker
    assert backbone_provenance(load_backbone("beats", checkpoint=published, size="tiny")) == PUBLISHED
    assert load_backbone("beats", checkpoint=published, size="tiny").describe() == "beats-tiny (published checkpoint)"
    assert PUBLISHED == "published checkpoint"
    assert STANDIN_PRETRAINED == "stand-in pretrained by the compendium on synthetic audio"
    assert backbone_provenance(STANDIN_PRETRAINED) == STANDIN_PRETRAINED
    with pytest.raises(ValueError, match="unknown provenance"):
        backbone_provenance("pretrained somehow")
    assert not is_standin_checkpoint(published) and not is_standin_checkpoint(None)


def test_notebook_labels_follow_the_provenance(tmp_path):
    from asd_utils.notebook.context import PRETRAINED_STANDIN_CAVEAT, UNTRAINED_CAVEAT, RunContext

    ctx = RunContext(notebook="x", profile="default", config={}, data_root=tmp_path, synthetic=True,
                     device=torch.device("cpu"), seed=0, results_dir=tmp_path, figures_dir=tmp_path,
                     cache_dir=tmp_path, index=None)
    assert ctx.note(backbone=STANDIN_PRETRAINED) == f"synthetic data; {STANDIN_PRETRAINED}; profile default"
    assert ctx.note(untrained_backbone=True) == "synthetic data; untrained stand-in backbone; profile default"
    assert ctx.note(backbone=load_backbone("eat", size="tiny", target_length=64)) == ctx.note(untrained_backbone=True)
    assert ctx.note(backbone=PUBLISHED) == "synthetic data; profile default"
    both = ctx.caveat_markdown(backbone={"a": STANDIN_PRETRAINED, "b": UNTRAINED})
    assert PRETRAINED_STANDIN_CAVEAT in both and UNTRAINED_CAVEAT in both
    assert PRETRAINED_STANDIN_CAVEAT not in ctx.caveat_markdown(untrained_backbone=True)


def test_frozen_knn_scores_are_clip_independent(synth_root):
    from clip_independence import assert_clip_independent

    from asd_utils.data import discover
    from asd_utils.pretrain.evaluate import frozen_knn_scores

    index = discover(synth_root)
    train, test = index[index["split"] == "train"], index[index["split"] == "test"].reset_index(drop=True)
    backbone = load_backbone("beats", size="tiny")
    # the KNNScorer detector's independence is tested with asd_utils.scoring; here GenRep + MemMixup
    detector = {"kind": "genrep", "k": 1, "n_mix_support": 2}
    full = frozen_knn_scores(backbone, index, layer=1, pooling="genrep", detector=detector, progress=False)
    assert full.table is not None and len(full.table) == 1 and np.isfinite(full.train_scores).all()

    def score_fn(rows):
        import pandas as pd

        sub = pd.concat([train, rows], ignore_index=True)
        return frozen_knn_scores(backbone, sub, layer=1, pooling="genrep", detector=detector, progress=False,
                                 with_metrics=False).test_scores

    assert_clip_independent(score_fn, test.iloc[:8], n_drop=2, atol=1e-9)


def test_checkpoint_provenance_without_loading(tmp_path):
    from asd_utils.backbones.beats import save_beats_checkpoint
    from asd_utils.backbones.provenance import checkpoint_provenance
    from asd_utils.pretrain.run import save_standin

    model = load_backbone("beats", size="tiny")
    assert checkpoint_provenance(None) == UNTRAINED
    assert checkpoint_provenance(save_beats_checkpoint(model, tmp_path / "p.pt")) == PUBLISHED
    standin = save_standin("beats", model, tmp_path / "s", marker={"provenance": STANDIN_PRETRAINED})
    assert checkpoint_provenance(standin) == STANDIN_PRETRAINED


def test_pretraining_is_deterministic_from_its_seed(synth_root, tmp_path):
    from asd_utils.pretrain.corpus import build_corpus
    from asd_utils.pretrain.run import pretrain_standin

    corpus = build_corpus(synth_root)
    cfg = dict(TINY["beats"])
    torch.manual_seed(123)  # the caller's RNG state must not matter
    a = pretrain_standin("beats", cfg, corpus, tmp_path / "a", marker={}, progress=False)
    torch.manual_seed(456)
    b = pretrain_standin("beats", cfg, corpus, tmp_path / "b", marker={}, progress=False)
    wa = torch.load(a, weights_only=True)["model"]
    wb = torch.load(b, weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


class _PlaneBackbone(torch.nn.Module):
    """A stand-in 'backbone' whose layer 1 is the point (mean of the first half of the clip, mean
    of the second half): clips written with constant halves land where the test puts them."""

    name, size, num_layers = "plane", "tiny", 1

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def hidden_states(self, waves):
        half = waves.shape[1] // 2
        point = torch.stack([waves[:, :half].mean(dim=1), waves[:, half:].mean(dim=1)], dim=1)
        return [waves[:, None, :2], point[:, None, :]]


def test_frozen_knn_scores_are_distances_to_the_nearest_training_clip(tmp_path):
    """Hand-worked kNN (k = 1, Euclidean, one bank): a test clip's score is its distance to the
    nearest training point, so anomalies placed far from the bank score high and the AUCs are 1."""
    import soundfile as sf

    from asd_utils.data import discover
    from asd_utils.pretrain.evaluate import frozen_knn_scores

    def clip(folder, name, point):
        wave = np.concatenate([np.full(800, point[0]), np.full(800, point[1])]).astype(np.float32)
        (tmp_path / "dev_data" / "raw" / "fan" / folder).mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "dev_data" / "raw" / "fan" / folder / name, wave, 16000, subtype="FLOAT")

    train = {"0000": (0.0, 0.0), "0001": (0.25, 0.0), "0002": (0.0, 0.25)}
    for number, point in train.items():
        clip("train", f"section_00_source_train_normal_{number}_a_1.wav", point)
    clip("train", "section_00_target_train_normal_0003_a_2.wav", (0.25, 0.25))
    test = {"section_00_source_test_normal_0000_a_1.wav": (0.0, 0.125),       # 0.125 from (0, 0)
            "section_00_target_test_normal_0001_a_2.wav": (0.25, 0.375),      # 0.125 from (0.25, 0.25)
            "section_00_source_test_anomaly_0002_a_1.wav": (0.5, 0.0),        # 0.25 from (0.25, 0)
            "section_00_target_test_anomaly_0003_a_2.wav": (-0.3, -0.4)}      # 0.5 from (0, 0)
    for name, point in test.items():
        clip("test", name, point)
    detector = {"kind": "knn", "k": 1, "metric": "euclidean", "separate_domains": False}
    result = frozen_knn_scores(_PlaneBackbone(), discover(tmp_path), layer=1, pooling="mean", detector=detector,
                               progress=False)
    by_name = dict(zip(result.test_index["file_name"], result.test_scores))
    expected = dict(zip(test, [0.125, 0.125, 0.25, 0.5]))
    assert by_name == pytest.approx(expected, abs=1e-6)
    # leave-one-out training scores: each training point's nearest other training point
    loo = dict(zip(result.train_index["file_name"], result.train_scores))
    assert sorted(loo.values()) == pytest.approx([0.25] * 4, abs=1e-6)
    row = result.table.iloc[0]
    assert (row["auc_source"], row["auc_target"], row["pauc"]) == (1.0, 1.0, 1.0)
    # GenRep's detector (per-domain banks, min of training-normalised distances) keeps the sign
    genrep = frozen_knn_scores(_PlaneBackbone(), discover(tmp_path), layer=1, pooling="mean",
                               detector={"kind": "genrep", "k": 1, "n_mix_support": 0}, progress=False)
    ranked = genrep.test_index["file_name"].to_numpy()[np.argsort(genrep.test_scores)]
    assert set(ranked[2:]) == {name for name in test if "anomaly" in name}
    assert tuple(genrep.table.iloc[0][["auc_source", "auc_target", "pauc"]]) == (1.0, 1.0, 1.0)
