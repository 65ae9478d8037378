"""Tests of asd_utils.methods.anopatch: attentive statistics pooling, the model, fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from asd_utils.methods.anopatch import AnoPatchModel, AttentiveStatsPool, embed_paths, finetune


class _FakeBackbone(nn.Module):
    """Frames the wave into 16-sample patches, a linear map per patch; optional CLS token."""

    def __init__(self, dim: int = 8, cls: bool = False):
        super().__init__()
        self.dim = dim
        self.has_cls_token = cls
        self.proj = nn.Linear(16, dim)
        self.block = nn.Linear(dim, dim)

    def hidden_states(self, waves: torch.Tensor) -> list[torch.Tensor]:
        b, s = waves.shape
        x = self.proj(waves[:, : s // 16 * 16].reshape(b, s // 16, 16))
        if self.has_cls_token:
            x = torch.cat([torch.full((b, 1, self.dim), 100.0), x], dim=1)
        return [x, torch.tanh(self.block(x))]


def _uniform_pool(dim: int, global_context: bool = True) -> AttentiveStatsPool:
    pool = AttentiveStatsPool(dim, attention_dim=4, global_context=global_context)
    with torch.no_grad():
        pool.attention[2].weight.zero_()
        pool.attention[2].bias.zero_()
    return pool


def test_asp_uniform_attention_gives_mean_and_std():
    tokens = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 6.0]]])  # (1, 4, 2)
    for gc in (True, False):
        out = _uniform_pool(2, gc)(tokens).detach()
        assert out.shape == (1, 4)
        np.testing.assert_allclose(out[0, :2].numpy(), [4.0, 3.0], atol=1e-6)
        np.testing.assert_allclose(out[0, 2:].numpy(), [np.sqrt(5.0), np.sqrt(5.0)], atol=1e-5)


def test_asp_weights_hand_case_and_normalisation():
    # no global context, attention = identity on a 1-channel token: logits e_t = x_t exactly
    pool = AttentiveStatsPool(1, attention_dim=1, global_context=False)
    with torch.no_grad():
        pool.attention[0].weight.fill_(1.0)
        pool.attention[0].bias.zero_()
        pool.attention[2].weight.fill_(1.0)
        pool.attention[2].bias.zero_()
    x = torch.tensor([[[0.0], [1.0], [2.0]]])
    e = torch.tanh(x)  # logits after tanh and the identity output layer
    a = torch.softmax(e, dim=1)
    mu = (a * x).sum(1)
    std = ((a * x * x).sum(1) - mu**2).sqrt()
    out = pool(x)
    np.testing.assert_allclose(out.detach().numpy(), torch.cat([mu, std], -1).numpy(), rtol=1e-6)
    # weights sum to one over tokens for every channel, on random input
    pool = AttentiveStatsPool(6, attention_dim=5)
    w = pool.weights(torch.randn(3, 7, 6))
    np.testing.assert_allclose(w.sum(dim=1).detach().numpy(), np.ones((3, 6)), atol=1e-6)
    with pytest.raises(ValueError):
        pool(torch.randn(3, 7, 5))


def test_asp_is_permutation_invariant_and_focuses_on_large_logits():
    torch.manual_seed(0)
    pool = AttentiveStatsPool(4, attention_dim=8)
    x = torch.randn(2, 9, 4)
    perm = torch.randperm(9)
    np.testing.assert_allclose(pool(x).detach().numpy(), pool(x[:, perm]).detach().numpy(), atol=1e-5)
    # channel-wise attention with a huge bias towards one token's value -> mean ~ that token
    pool = AttentiveStatsPool(1, attention_dim=1, global_context=False)
    with torch.no_grad():
        pool.attention[0].weight.fill_(10.0)
        pool.attention[0].bias.zero_()
        pool.attention[2].weight.fill_(50.0)
        pool.attention[2].bias.zero_()
    x = torch.tensor([[[-1.0], [-1.0], [1.0]]])
    assert pool(x)[0, 0].item() == pytest.approx(1.0, abs=1e-4)


def test_anopatch_model_drops_cls_and_projects():
    torch.manual_seed(0)
    backbone = _FakeBackbone(8, cls=True)
    model = AnoPatchModel(backbone, emb_dim=5, attention_dim=4).eval()
    waves = torch.randn(3, 160)
    with torch.no_grad():
        expected_tokens = torch.tanh(backbone.block(backbone.proj(waves.reshape(3, 10, 16))))  # CLS dropped
        np.testing.assert_allclose(model.tokens(waves).numpy(), expected_tokens.numpy(), atol=1e-6)
        # the forward is exactly proj(batchnorm(pool(tokens))) (eval-mode batch norm: running stats)
        pooled = model.pool(expected_tokens)
        expected = model.proj((pooled - model.norm.running_mean) / torch.sqrt(model.norm.running_var + model.norm.eps)
                              * model.norm.weight + model.norm.bias)
        np.testing.assert_allclose(model(waves).numpy(), expected.numpy(), atol=1e-5)
    # layer 0 pools the (CLS-dropped) first hidden state instead
    first = AnoPatchModel(backbone, emb_dim=5, attention_dim=4, layer=0)
    with torch.no_grad():
        np.testing.assert_allclose(first.tokens(waves).numpy(), backbone.proj(waves.reshape(3, 10, 16)).numpy(),
                                   atol=1e-6)


def _two_tone_clips(tmp_path, n=8, samples=800):
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(n):
        freq = 300.0 if i % 2 == 0 else 1200.0
        t = np.arange(samples) / 16000.0
        wave = 0.3 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) + 0.01 * rng.normal(size=t.size)
        path = tmp_path / f"clip_{i}.wav"
        sf.write(path, wave.astype(np.float32), 16000)
        paths.append(str(path))
        labels.append(i % 2)
    return paths, np.array(labels)


def test_backbone_and_head_learning_rates_are_two_parameter_groups(tmp_path):
    """One Adam step moves every parameter with a gradient by (almost exactly) its group's lr:
    Adam's first update is lr * g / (|g| + eps). So the largest change of a backbone weight is the
    backbone lr and that of a pooling/projection/ArcFace weight the head lr."""
    from asd_utils.training.losses import ArcFace

    paths, labels = _two_tone_clips(tmp_path, n=4)
    torch.manual_seed(0)
    model = AnoPatchModel(_FakeBackbone(8), emb_dim=6, attention_dim=4)
    loss = ArcFace(2, 6, scale=10.0, margin=0.1)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    centres_before = loss.centres.detach().clone()
    finetune(model, loss, paths, labels, clip_samples=640, epochs=1, batch_size=4, progress=False,
             optimizer={"name": "adam", "lr": 1e-2, "backbone_lr": 1e-4})
    step = {name: float((p.detach() - before[name]).abs().max()) for name, p in model.named_parameters()}
    backbone_step = max(v for k, v in step.items() if k.startswith("backbone."))
    head_step = max(v for k, v in step.items() if not k.startswith("backbone."))
    assert backbone_step == pytest.approx(1e-4, rel=1e-3)
    assert head_step == pytest.approx(1e-2, rel=1e-3)
    assert float((loss.centres.detach() - centres_before).abs().max()) == pytest.approx(1e-2, rel=1e-3)
    # without backbone_lr: one group, the head lr everywhere
    torch.manual_seed(0)
    model = AnoPatchModel(_FakeBackbone(8), emb_dim=6, attention_dim=4)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    finetune(model, ArcFace(2, 6, scale=10.0, margin=0.1), paths, labels, clip_samples=640, epochs=1,
             batch_size=4, progress=False, optimizer={"name": "adam", "lr": 1e-2})
    backbone_step = max(float((p.detach() - before[k]).abs().max()) for k, p in model.named_parameters()
                        if k.startswith("backbone."))
    assert backbone_step == pytest.approx(1e-2, rel=1e-3)
    # a frozen backbone does not move at all
    torch.manual_seed(0)
    model = AnoPatchModel(_FakeBackbone(8), emb_dim=6, attention_dim=4)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    finetune(model, ArcFace(2, 6, scale=10.0, margin=0.1), paths, labels, clip_samples=640, epochs=1,
             batch_size=4, progress=False, optimizer={"name": "adam", "lr": 1e-2, "backbone_lr": 1e-3},
             freeze_backbone=True)
    assert all(torch.equal(p, before[k]) for k, p in model.named_parameters() if k.startswith("backbone."))


def test_finetune_separates_two_tones_and_resumes(tmp_path):
    from asd_utils.methods.ioa import classification_accuracy
    from asd_utils.training.losses import ArcFace

    paths, labels = _two_tone_clips(tmp_path)
    torch.manual_seed(0)
    model = AnoPatchModel(_FakeBackbone(8), emb_dim=6, attention_dim=4)
    loss = ArcFace(2, 6, scale=10.0, margin=0.1)
    emb0 = embed_paths(model, paths, clip_samples=640, batch_size=3, progress=False)
    history = finetune(model, loss, paths, labels, clip_samples=640, epochs=20, batch_size=4,
                       optimizer={"name": "adam", "lr": 1e-2, "backbone_lr": 1e-3}, progress=False,
                       checkpoint_dir=tmp_path / "ckpt")
    assert len(history) == 20 and (tmp_path / "ckpt" / "last.pt").exists()
    # it learns: the ArcFace loss falls to under 1/100 of the first epoch's, every clip is
    # classified right, and every clip is closer (cosine) to each clip of its tone than to any of the other
    assert history[-1]["loss"] < history[0]["loss"] / 100
    emb = embed_paths(model, paths, clip_samples=640, batch_size=3, progress=False)
    assert emb.shape == (8, 6)
    assert classification_accuracy(emb, labels, loss) == 1.0
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cos = unit @ unit.T
    same = labels[:, None] == labels[None, :]
    assert cos[same].min() > cos[~same].max()
    assert not np.allclose(emb, emb0)
    # resuming a finished run trains nothing more and keeps the weights
    finetune(model, loss, paths, labels, clip_samples=640, epochs=20, batch_size=4,
             optimizer={"name": "adam", "lr": 1e-2, "backbone_lr": 1e-3}, progress=False,
             checkpoint_dir=tmp_path / "ckpt")
    np.testing.assert_allclose(embed_paths(model, paths, clip_samples=640, progress=False), emb, atol=1e-6)


# -- pooled DCASE years (EXTRA_TRAIN_ROOTS) ------------------------------------------------------
def _dcase_root(root, machines=("slider",), n=2):
    for machine in machines:
        folder = root / "dev_data" / "raw" / machine / "train"
        folder.mkdir(parents=True)
        for i in range(n):
            sf.write(folder / f"section_00_source_train_normal_{i:04d}_noAttribute.wav",
                     np.zeros(800, dtype=np.float32), 16000)
    return root


def test_extra_training_roots_get_their_own_classes(tmp_path):
    from asd_utils.data import discover
    from asd_utils.methods import anopatch
    from asd_utils.training import build_class_labels
    from asd_utils.training.labels import ROOT_COLUMN

    main = discover(_dcase_root(tmp_path / "dcase2025", ("slider", "fan")))
    main_train = main[main["split"] == "train"]
    extra = anopatch.extra_training_index([_dcase_root(tmp_path / "dcase2024"),
                                           _dcase_root(tmp_path / "other" / "dcase2024")])
    assert extra[ROOT_COLUMN].tolist() == ["dcase2024"] * 2 + ["dcase2024#2"] * 2  # repeated folder name
    fit, column = anopatch.pooled_training_index(main_train, extra)
    assert column == ROOT_COLUMN and len(fit) == len(main_train) + 4
    _, classes = build_class_labels(fit, ["machine", "section", "attributes", "domain"], root_column=column)
    assert classes == ["dcase2024#2|slider|00|noAttribute|source", "dcase2024|slider|00|noAttribute|source",
                       "main|fan|00|noAttribute|source", "main|slider|00|noAttribute|source"]
    # no extra roots: the training clips unchanged, the class names as before
    alone, column = anopatch.pooled_training_index(main_train, anopatch.extra_training_index([]))
    assert column is None and alone["path"].tolist() == main_train["path"].tolist()
    # an extra index without root names is one "extra" root; "main" is reserved
    fit, _ = anopatch.pooled_training_index(main_train, extra.drop(columns=[ROOT_COLUMN]))
    assert set(fit[ROOT_COLUMN]) == {"main", "extra"}
    with pytest.raises(ValueError, match="reserved"):
        anopatch.pooled_training_index(main_train, extra.assign(**{ROOT_COLUMN: "main"}))
    (tmp_path / "empty" / "dev_data" / "raw" / "fan" / "test").mkdir(parents=True)
    sf.write(tmp_path / "empty" / "dev_data" / "raw" / "fan" / "test" / "section_00_source_test_normal_0000_x.wav",
             np.zeros(800, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="no training clips"):
        anopatch.extra_training_index([tmp_path / "empty"])


def test_train_and_embed_trains_on_root_aware_classes(tmp_path, monkeypatch):
    """The classes the ArcFace head is built on (and stored with the checkpoint) keep the years apart."""
    from asd_utils.data import discover
    from asd_utils.methods import anopatch

    seen = {}

    def fake_finetune(model, loss_fn, paths, labels, **kwargs):
        seen.update(n_classes=loss_fn.n_classes, labels=list(labels), paths=list(paths),
                    classes=kwargs["config"]["classes"])
        return []

    monkeypatch.setattr(anopatch, "finetune", fake_finetune)
    monkeypatch.setattr(anopatch, "build_model",
                        lambda cfg, **kw: AnoPatchModel(_FakeBackbone(8), emb_dim=6, attention_dim=4))
    main = discover(_dcase_root(tmp_path / "dcase2025", ("fan", "slider"), n=1))
    extra = anopatch.extra_training_index([_dcase_root(tmp_path / "dcase2024", ("slider",), n=2)])
    cfg = {"class_keys": ["machine", "section", "attributes", "domain"], "arcface": {"scale": 10, "margin": 0.1},
           "epochs": 1, "batch_size": 2, "optimizer": {"name": "adam", "lr": 1e-3}, "embed_batch_size": 2}
    emb, _, _ = anopatch.train_and_embed(cfg, main, main, checkpoint=None, clip_samples=640,
                                         extra_train_index=extra, progress=False)
    assert seen["classes"] == ["dcase2024|slider|00|noAttribute|source", "main|fan|00|noAttribute|source",
                               "main|slider|00|noAttribute|source"]
    assert seen["n_classes"] == 3 and seen["labels"] == [1, 2, 0, 0] and emb.shape == (2, 6)
    anopatch.train_and_embed(cfg, main, main, checkpoint=None, clip_samples=640, progress=False)
    assert seen["classes"] == ["fan|00|noAttribute|source", "slider|00|noAttribute|source"]
    assert seen["n_classes"] == 2 and seen["labels"] == [0, 1]


def test_paper_profile_warns_loudly_without_the_other_years(capsys):
    from asd_utils.config import load_config
    from asd_utils.methods import anopatch
    from asd_utils.notebook.context import WARNING_PREFIX, loud_warning

    paper = load_config("02_gisp_heu", "paper")
    warning = anopatch.missing_years_warning(paper, [], profile="paper")
    assert warning.startswith("profile paper: EXTRA_TRAIN_ROOTS is empty") and "DCASE 2022-2025" in warning
    loud_warning(warning)
    err = capsys.readouterr().err
    assert err == WARNING_PREFIX + warning + "\n"  # one line, for the runner's log
    assert anopatch.missing_years_warning(paper, ["/data/dcase2024t2"], profile="paper") is None
    for profile in ("smoke", "default"):
        assert anopatch.missing_years_warning(load_config("02_gisp_heu", profile), [], profile=profile) is None
