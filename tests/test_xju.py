"""Report 003 (XJU) glue: OS-SCL batches and loss, training with EMA and gradient accumulation,
caching, embeddings, accuracies, scoring (asd_utils.methods.xju)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from clip_independence import assert_clip_independent

from asd_utils.methods import xju
from asd_utils.models import FFTBranch
from asd_utils.models.fusion import FusionModel
from asd_utils.training import Trainer

T = 4000  # samples per clip in these tests


class _SpectrumBranch(torch.nn.Module):
    """A branch without batch statistics: log |rfft| band means -> Linear (for the accumulation test)."""

    def __init__(self, out_dim=8):
        super().__init__()
        self.out_dim = out_dim
        self.linear = torch.nn.Linear(32, out_dim)

    def forward(self, waves):
        spec = torch.log1p(torch.fft.rfft(waves, dim=1).abs()[:, :1984]).view(len(waves), 32, -1).mean(dim=2)
        return self.linear(spec)


def _clips(n=24, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T) / 16000
    labels = np.arange(n) % n_classes
    waves = np.stack([np.sin(2 * np.pi * (300 + 500 * y) * t) + 0.3 * rng.normal(size=T) for y in labels])
    return waves.astype(np.float32), labels.astype(np.int64)


def _train_cfg(**over):
    cfg = {"head": {"subcenters": 2, "margin": 0.2, "scale": 30.0},
           "supcon": {"temperature": 0.04, "base_temperature": 0.07, "weight": 1.0},
           "mixup_alpha": 0.5, "optimizer": {"name": "adamw", "lr": 3e-3},
           "scheduler": {"name": "inverse_sqrt", "warmup_steps": 2}, "batch_size": 8, "grad_accum_steps": 1,
           "total_steps": 6, "ema_momentum": 0.9995, "ema_horizon": "scaled", "ema_reference_steps": 10000,
           "max_grad_norm": None, "checkpoint_every": 1}
    cfg.update(over)
    return cfg


def test_collate_mixes_with_one_lambda_per_batch():
    waves, labels = _clips(8)
    gen = torch.Generator().manual_seed(0)
    collate = xju.OSSCLMixupCollate(T, gen, alpha=0.5)
    batch = [(torch.as_tensor(w), torch.as_tensor(y)) for w, y in zip(waves, labels)]
    x, targets = collate(batch)
    assert x.shape == (8, T) and targets.shape == (8, 3)
    lam = targets[:, 2]
    assert torch.all(lam == lam[0]) and 0.0 <= float(lam[0]) <= 1.0
    y_a, y_b = targets[:, 0].long(), targets[:, 1].long()
    assert torch.equal(y_a, torch.as_tensor(labels))
    # x = lam * x_i + (1 - lam) * x_perm(i), and y_b is the partner's label
    w = torch.as_tensor(waves)
    for i in range(8):
        partners = [j for j in range(8) if torch.allclose(x[i], lam[0] * w[i] + (1 - lam[0]) * w[j], atol=1e-5)]
        assert partners and any(int(labels[j]) == int(y_b[i]) for j in partners)
    x0, t0 = xju.OSSCLMixupCollate(T, gen, alpha=None)(batch)
    assert torch.equal(x0, w) and torch.equal(t0[:, 0], t0[:, 1]) and torch.all(t0[:, 2] == 1)


def test_lambda_distribution_is_beta_half_half():
    gen = torch.Generator().manual_seed(1)
    collate = xju.OSSCLMixupCollate(T, gen, alpha=0.5)
    batch = [(torch.zeros(T), torch.tensor(0)), (torch.zeros(T), torch.tensor(1))]
    lams = np.array([float(collate(batch)[1][0, 2]) for _ in range(3000)])
    assert lams.mean() == pytest.approx(0.5, abs=0.03)
    assert lams.var() == pytest.approx(0.125, abs=0.015)  # Beta(0.5, 0.5): var = 1/8
    assert np.mean((lams < 0.1) | (lams > 0.9)) > 0.35  # U-shaped


def test_loss_accepts_plain_labels_and_mixed_targets():
    torch.manual_seed(0)
    loss = xju.OSSCLLoss(3, 8, subcenters=2, supcon_weight=0.0)
    emb = torch.randn(6, 8)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    plain = loss(emb, y)
    mixed = loss(emb, torch.stack([y.float(), y.float(), torch.ones(6)], dim=1))
    assert plain.item() == pytest.approx(mixed.item(), rel=1e-6)
    with pytest.raises(ValueError, match="targets"):
        loss(emb, torch.zeros(6, 2))


def test_ema_decay_and_steps_plan():
    cfg = _train_cfg(total_steps=10000)
    assert xju.ema_decay(cfg, 10000) == pytest.approx(0.9995)
    assert xju.ema_decay(cfg, 100) == pytest.approx(0.9995 ** 100)
    assert xju.ema_decay(cfg, 100) ** 100 == pytest.approx(0.9995 ** 10000)  # same share of the init left
    assert xju.ema_decay({**cfg, "ema_horizon": "fixed"}, 100) == 0.9995
    with pytest.raises(ValueError, match="ema_horizon"):
        xju.ema_decay({**cfg, "ema_horizon": "other"}, 10)
    plan = xju.steps_plan(7000, {"batch_size": 16, "grad_accum_steps": 8, "total_steps": 10000})
    assert plan == {"batches_per_epoch": 438, "steps_per_epoch": 55, "epochs": 182, "optimizer_steps": 10010}
    plan = xju.steps_plan(33, {"batch_size": 16, "grad_accum_steps": 1, "total_steps": 5})
    assert plan["batches_per_epoch"] == 2  # a last batch of one clip is dropped


def _fft_model(seed=0, n_samples=T):
    torch.manual_seed(seed)
    return FusionModel({"fft": FFTBranch(n_samples, 16, width=0.0625)})


def test_ema_model_differs_from_the_live_model_and_follows_the_momentum_formula():
    waves, labels = _clips(16)
    torch.manual_seed(0)
    model = FusionModel({"spec": _SpectrumBranch(8)})
    init = {k: v.clone() for k, v in model.state_dict().items()}
    loss = xju.OSSCLLoss(3, 8, subcenters=2)
    alpha = 0.9
    # one optimizer step per epoch: record the live weights after each step
    trainer = Trainer(model, loss, {"name": "adamw", "lr": 1e-2}, {"name": "constant"}, 3, ema_decay=alpha,
                      progress=False)
    loader = xju.make_osscl_loader(waves, labels, crop_samples=T, batch_size=16, seed=0)
    live = []
    for epoch in (1, 2, 3):
        trainer.fit(loader, until_epoch=epoch)
        live.append({k: v.clone() for k, v in model.state_dict().items()})
    for key in init:
        expected = alpha ** 3 * init[key]
        for n, weights in enumerate(live):
            expected = expected + (1 - alpha) * alpha ** (2 - n) * weights[key]
        torch.testing.assert_close(trainer.ema.shadow[key], expected, atol=1e-6, rtol=1e-5)
    averaged = trainer.ema.averaged_model(model)
    assert any(not torch.equal(a, b) for a, b in zip(averaged.state_dict().values(), model.state_dict().values()))


def test_train_system_returns_the_ema_model_and_learns(tmp_path):
    waves, labels = _clips(24)
    waves = 0.05 * waves  # a recording's level; batch-norm running variances start at 1
    cfg = _train_cfg(total_steps=80, optimizer={"name": "adamw", "lr": 3e-3}, scheduler={"name": "constant"},
                     ema_horizon="fixed", ema_momentum=0.8)
    torch.manual_seed(0)
    model = FusionModel({"fft": FFTBranch(T, 16, width=0.25)})
    res = xju.train_system(model, waves, labels, 3, cfg, crop_samples=T, seed=0, progress=False)
    assert res.ema_momentum == 0.8 and not res.restored
    assert res.plan["optimizer_steps"] >= 80 and len(res.history) == res.plan["epochs"]
    ema_state, live_state = res.model.state_dict(), res.live_model.state_dict()
    assert any(not torch.equal(ema_state[k], live_state[k]) for k in ema_state)
    assert not res.model.training and not res.live_model.training
    emb = xju.embed_system(res.model, waves, crop_samples=T, hop_samples=T)
    acc = xju.branch_accuracies(emb, labels, res.loss, res.model.branch_slices)
    assert acc["all"] == acc["fft"]  # one branch: the same slice
    assert acc["all"] >= 0.9  # three easy classes are learned (chance 1/3)
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_gradient_accumulation_8_x_2_equals_one_batch_of_16():
    """Without batch-statistic layers, mixing or SupCon (both couple the clips of a micro-batch), eight
    micro-batches of two give the same optimizer step as one batch of 16."""
    waves, labels = _clips(16)
    states = []
    for batch, accum in ((16, 1), (2, 8)):
        torch.manual_seed(0)
        model = FusionModel({"spec": _SpectrumBranch(8)})
        torch.manual_seed(1)
        loss = xju.OSSCLLoss(3, 8, subcenters=2, supcon_weight=0.0)
        trainer = Trainer(model, loss, {"name": "adamw", "lr": 1e-2}, {"name": "constant"}, 1,
                          grad_accum_steps=accum, progress=False)
        loader = xju.make_osscl_loader(waves, labels, crop_samples=T, batch_size=batch, seed=0, mixup_alpha=None,
                                       shuffle=False)
        trainer.fit(loader)
        assert trainer.state.step == 1
        states.append({**model.state_dict(), **{f"head.{k}": v for k, v in loss.state_dict().items()}})
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], atol=1e-6, rtol=1e-5)
    assert not torch.equal(states[0]["branches.spec.linear.weight"],
                           FusionModel({"spec": _SpectrumBranch(8)}).state_dict()["branches.spec.linear.weight"])


def test_training_is_cached_and_restored(tmp_path):
    waves, labels = _clips(24)
    cfg = _train_cfg(total_steps=4)
    model_cfg = {"branch_dim": 16}
    run = xju.training_run_dir(tmp_path, "EAT-FFT", model_cfg=model_cfg, train_cfg=cfg, backbones={},
                               crop_samples=T, seed=0, classes=["a", "b", "c"], waves=waves, labels=labels)
    first = xju.train_system(_fft_model(), waves, labels, 3, cfg, crop_samples=T, seed=0, progress=False,
                             checkpoint_dir=run)
    again = xju.train_system(_fft_model(), waves, labels, 3, cfg, crop_samples=T, seed=0, progress=False,
                             checkpoint_dir=run)
    assert again.restored and not first.restored
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key])
    other = xju.training_run_dir(tmp_path, "EAT-FFT", model_cfg=model_cfg, train_cfg={**cfg, "total_steps": 5},
                                 backbones={}, crop_samples=T, seed=0, classes=["a", "b", "c"], waves=waves,
                                 labels=labels)
    assert other != run


def test_training_index_and_supplemental_switch():
    index = pd.DataFrame({
        "split": ["train", "train", "test", "supplemental", "supplemental"],
        "machine": ["fan"] * 5, "section": ["00"] * 5, "attributes": ["a", "b", "a", "a", "n"],
        "domain": ["source", "target", "source", "source", "source"],
        "supplemental_kind": [None, None, None, "clean", "noise"],
    })
    train = xju.training_index(index)
    assert list(train["split"]) == ["train", "train"]
    both = xju.training_index(index, use_supplemental=True)
    assert list(both["domain"]) == ["source", "target", "supplemental_clean", "supplemental_noise"]
    labels, classes = xju.class_labels(both)
    assert len(classes) == 4 and "fan|00|a|supplemental_clean" in classes


def test_scorer_switch_and_clip_independence_of_the_whole_pipeline():
    waves, labels = _clips(24)
    cfg = _train_cfg(total_steps=3)
    res = xju.train_system(_fft_model(n_samples=T // 2), waves, labels, 3, cfg, crop_samples=T // 2, seed=0,
                           progress=False)
    train_emb = xju.embed_system(res.model, waves, crop_samples=T // 2, hop_samples=T // 4)
    domains = np.array(["source"] * 20 + ["target"] * 4)
    scoring = {"k": 1, "metric": "cosine", "smote_ratio": 0.5, "smote_neighbors": 3}
    scorer = xju.make_scorer(scoring).fit(train_emb, domains)
    assert scorer.n_synthetic_ == 10 - 4
    assert xju.make_scorer(scoring, smote=False).fit(train_emb, domains).n_synthetic_ == 0
    test_waves, _ = _clips(9, seed=5)

    def score_fn(clips):
        return scorer.score(xju.embed_system(res.model, np.asarray(clips), crop_samples=T // 2,
                                             hop_samples=T // 4, batch_size=4))

    assert_clip_independent(score_fn, test_waves, atol=1e-6)
    assert math.isfinite(float(score_fn(test_waves).sum()))


def test_embeddings_are_cached_by_clips_and_weights(tmp_path):
    waves, _ = _clips(6)
    model = _fft_model().eval()
    plain = xju.embed_system(model, waves, crop_samples=T, hop_samples=T)
    first = xju.embed_cached(model, waves, cache_dir=tmp_path, name="sys train", crop_samples=T, hop_samples=T)
    files = list(tmp_path.glob("embeddings_sys_train_*.npz"))
    assert len(files) == 1
    np.testing.assert_array_equal(first, plain)
    again = xju.embed_cached(model, waves, cache_dir=tmp_path, name="sys train", crop_samples=T, hop_samples=T)
    np.testing.assert_array_equal(again, plain)
    assert len(list(tmp_path.glob("*.npz"))) == 1  # served from the cache
    other = _fft_model(seed=1).eval()
    changed = xju.embed_cached(other, waves, cache_dir=tmp_path, name="sys train", crop_samples=T, hop_samples=T)
    assert len(list(tmp_path.glob("*.npz"))) == 2 and not np.allclose(changed, plain)
    xju.embed_cached(model, waves[:3], cache_dir=tmp_path, name="sys train", crop_samples=T, hop_samples=T)
    assert len(list(tmp_path.glob("*.npz"))) == 3
