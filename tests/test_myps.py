"""MYPS glue (report 001): pooling, ArcFace head, LoRA vs full steps, noise mixing per type, runs and
snapshots, caching, separate libraries, checkpoint ensembles from training statistics, -MA."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from clip_independence import assert_clip_independent

from asd_utils.methods import ioa, myps, pipeline
from asd_utils.methods.ioa import SectionScores
from asd_utils.scoring import KNNScorer, SeparateLibraryKNN

SR = 16000
EAT_TINY = {"backbone": "eat", "size": "tiny", "layer": -1, "target_length": "auto"}
LORA = {"mode": "lora", "rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["qkv"]}


def _model(finetune_cfg, crop=SR // 2):
    model, identity = myps.build_model(EAT_TINY, finetune_cfg, checkpoint=None, crop_samples=crop, seed=0)
    return model, identity


def test_embedding_is_the_mean_of_the_patch_tokens_without_cls():
    model, identity = _model({"mode": "frozen"})
    waves = 0.1 * torch.randn(2, SR // 2, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        hidden = model.backbone.hidden_states(waves)
        emb = model(waves)
    assert model.backbone.config.target_length == 48  # auto: 0.5 s crop -> 48 frames (multiple of 16)
    torch.testing.assert_close(emb, hidden[-1][:, 1:].mean(dim=1))
    assert not torch.allclose(emb, hidden[-1].mean(dim=1))
    assert identity["name"] == "eat" and identity["weights"] == "random-init-seed-0"


def test_arcface_head_matches_the_reports_formula_on_a_batch():
    # the report's loss (with the minus sign it drops): -1/N sum_i log e^{s cos(t_yi + m)} /
    # (e^{s cos(t_yi + m)} + sum_{j != yi} e^{s cos t_j}), cos t_j = W_j^T x_i / (|W_j| |x_i|)
    head = myps.make_head(3, 2, {"scale": 10.0, "margin": 0.3})
    w = torch.tensor([[2.0, 0.0], [0.0, 0.5], [-3.0, -3.0]])
    with torch.no_grad():
        head.centres.copy_(w)
    x = torch.tensor([[3.0, 1.0], [-0.5, 2.0]])
    y = [0, 1]
    total = 0.0
    for i in range(2):
        cos = [float(w[j] @ x[i] / (w[j].norm() * x[i].norm())) for j in range(3)]
        target = 10.0 * math.cos(math.acos(cos[y[i]]) + 0.3)
        others = [10.0 * cos[j] for j in range(3) if j != y[i]]
        total += -math.log(math.exp(target) / (math.exp(target) + sum(math.exp(o) for o in others)))
    assert head(x, torch.tensor(y)).item() == pytest.approx(total / 2, abs=1e-5)


def _step(model, head, lr=0.05):
    from asd_utils.training import Trainer

    waves = 0.1 * torch.randn(4, SR // 2, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    head_before = head.centres.detach().clone()
    trainer = Trainer(model, head, {"name": "adamw", "lr": lr, "weight_decay": 0.0}, {"name": "constant"}, 1,
                      progress=False)
    trainer.fit([(waves, labels)])
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    return changed, not torch.equal(head.centres, head_before)


def test_lora_step_changes_only_adapters_and_head():
    model, _ = _model(LORA)
    head = myps.make_head(3, model.dim, {"scale": 30.0, "margin": 0.5})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    changed, head_changed = _step(model, head)
    assert changed and changed <= trainable and head_changed
    assert any("lora_B" in n for n in changed)


def test_full_finetuning_step_changes_the_encoder():
    model, _ = _model({"mode": "full"})
    head = myps.make_head(3, model.dim, {"scale": 30.0, "margin": 0.5})
    changed, head_changed = _step(model, head)
    assert head_changed
    assert any(n.startswith("backbone.blocks.0.attn.qkv") for n in changed)
    assert any(n.startswith("backbone.patch_embed") for n in changed)


def test_noise_is_mixed_only_into_the_types_that_have_noise():
    from asd_utils.training.noise_mix import NoiseMixer

    gen = torch.Generator().manual_seed(0)
    pool = np.ones((2, 400), dtype=np.float32)
    collate = myps.NoiseMixCropCollate(200, gen, np.array([0, -1]), [NoiseMixer(pool, (0.0, 0.0), p=1.0)])
    clips = [(torch.zeros(400) + 0.5 * (i % 2 == 1) + torch.sin(torch.arange(400.0)), torch.tensor(i % 2))
             for i in range(6)]
    waves, labels = collate(clips)
    assert waves.shape == (6, 200) and labels.tolist() == [0, 1, 0, 1, 0, 1]
    crops = myps.NoiseMixCropCollate(200, torch.Generator().manual_seed(0), np.array([-1, -1]), [])(clips)[0]
    # class 1 has no noise pool: untouched crops; class 0 at 0 dB: its power doubles
    torch.testing.assert_close(waves[labels == 1], crops[labels == 1])
    p_in, p_out = crops[labels == 0].pow(2).mean(dim=1), waves[labels == 0].pow(2).mean(dim=1)
    assert (p_out > 1.5 * p_in).all()


def test_snapshot_epochs_and_run_plans():
    assert myps.snapshot_epochs(20000, [0.5, 1.0], 219) == (91, [46, 91])
    assert myps.snapshot_epochs(10, [0.1, 0.5, 1.0], 8) == (1, [1])
    with pytest.raises(ValueError, match="fractions"):
        myps.snapshot_epochs(10, [0.0], 2)
    variants = {"EAT-LoRA": {"batch_size": 32, "steps": 120, "save_at": [0.5, 1.0], "learning_rates": [1e-3, 5e-4]},
                "EAT-FFT": {"batch_size": 32, "steps": 120, "save_at": [1.0], "learning_rates": [1e-4]}}
    plans = myps.run_plans(variants, 1245)  # 39 steps per epoch -> 3 epochs
    assert [p.name for p in plans] == ["EAT-LoRA lr=0.001", "EAT-LoRA lr=0.0005", "EAT-FFT lr=0.0001"]
    assert (plans[0].epochs, plans[0].save_epochs, plans[0].steps_per_epoch) == (3, [2, 3], 39)
    assert plans[0].snapshot_name(2) == "EAT-LoRA lr=0.001 step=78"
    assert myps.run_plans(variants, 65)[0].steps_per_epoch == 2  # a final batch of one clip is dropped


def _index(machines=("m1", "m2"), n_src=6, n_tgt=3, n_test=4, hidden=("m2",)):
    rows = []
    for m in machines:
        attrs = "noAttribute" if m in hidden else "a_1"
        for i in range(n_src + n_tgt):
            rows.append(dict(path=f"{m}/train/{i}.wav", file_name=f"train_{m}_{i}.wav", machine=m, section="00",
                             split="train", domain="source" if i < n_src else "target", label="normal",
                             attributes=attrs, supplemental_kind=None))
        for i in range(n_test):
            rows.append(dict(path=f"{m}/test/{i}.wav", file_name=f"section_00_{m}_{i}.wav", machine=m,
                             section="00", split="test", domain="source" if i % 2 else "target",
                             label="anomaly" if i % 2 else "normal", attributes=attrs, supplemental_kind=None))
        rows.append(dict(path=f"{m}/supp/c.wav", file_name="c.wav", machine=m, section="00", split="supplemental",
                         domain="source", label=None, attributes=attrs, supplemental_kind="clean"))
        rows.append(dict(path=f"{m}/supp/n.wav", file_name="n.wav", machine=m, section="00", split="supplemental",
                         domain="source", label=None, attributes=attrs, supplemental_kind="noise"))
    return pd.DataFrame(rows)


def test_training_set_noise_clips_and_ma_machines():
    index = _index()
    fit = myps.training_set(index)
    assert len(fit) == 2 * 9 + 2 and (fit["split"] == "train").sum() == 18
    assert len(myps.training_set(index, use_clean_supplemental=False)) == 18
    assert myps.noise_clips(index)["file_name"].tolist() == ["n.wav", "n.wav"]
    labels, classes = ioa.class_labels(fit)
    assert classes == ["m1|00|a_1|source", "m1|00|a_1|target", "m2|00|noAttribute|source",
                       "m2|00|noAttribute|target"]  # hidden attributes: domain classes only
    assert myps.hidden_attribute_machines(index) == ["m2"]
    assert myps.ma_machines("hidden_attributes", index) == ["m2"]
    assert myps.ma_machines(["AutoTrash", "m1"], index) == ["m1"]  # absent types are ignored
    with pytest.raises(ValueError, match="hidden_attributes"):
        myps.ma_machines("all", index)


def test_clean_supplemental_clips_join_their_training_class_or_one_clean_class():
    """"match": a clean clip whose type, section, attributes and domain name a training class joins
    it; one with an attribute string no training clip has joins one clean class of its type and
    section (never a class per unseen string); "own": every clean clip in that class."""
    index = _index()
    extra = index[index["supplemental_kind"] == "clean"].iloc[:1].assign(file_name="c2.wav", attributes="a_9",
                                                                          path="m1/supp/c2.wav")
    extra2 = extra.assign(file_name="c3.wav", attributes="a_8", path="m1/supp/c3.wav")
    index = pd.concat([index, extra, extra2], ignore_index=True)
    fit = myps.training_set(index, clean_class="match")
    clean = fit[fit["split"] == "supplemental"]
    assert clean["attributes"].tolist() == ["a_1", "noAttribute", myps.CLEAN_CLASS_ATTRIBUTE,
                                            myps.CLEAN_CLASS_ATTRIBUTE]
    _, classes = pipeline.class_labels(fit, ["machine", "section", "attributes", "domain"])
    assert classes == ["m1|00|a_1|source", "m1|00|a_1|target", f"m1|00|{myps.CLEAN_CLASS_ATTRIBUTE}|source",
                       "m2|00|noAttribute|source", "m2|00|noAttribute|target"]
    own = myps.training_set(index, clean_class="own")
    assert (own.loc[own["split"] == "supplemental", "attributes"] == myps.CLEAN_CLASS_ATTRIBUTE).all()
    assert (index["attributes"] != myps.CLEAN_CLASS_ATTRIBUTE).all()  # the caller's index is untouched
    with pytest.raises(ValueError, match="clean_class"):
        myps.training_set(index, clean_class="nearest")


def test_separate_libraries_normalise_each_domain_by_its_own_training_distances():
    rng = np.random.default_rng(0)
    src = rng.standard_normal((20, 8)) + 3.0
    tgt = rng.standard_normal((5, 8)) - 3.0
    x = np.concatenate([src, tgt])
    domains = np.array(["source"] * 20 + ["target"] * 5)
    sep = SeparateLibraryKNN().fit(x, domains)
    knn = KNNScorer(k=1, metric="cosine", separate_domains=True).fit(x, domains)
    loo = knn.training_scores(by_domain=True)
    for d, rows in (("source", slice(0, 20)), ("target", slice(20, 25))):
        values = loo[d][rows]
        assert sep.mean_[d] == pytest.approx(values.mean()) and sep.std_[d] == pytest.approx(values.std())
    q = rng.standard_normal((7, 8))
    raw = knn.score_by_domain(q)
    expected = np.minimum((raw["source"] - sep.mean_["source"]) / sep.std_["source"],
                          (raw["target"] - sep.mean_["target"]) / sep.std_["target"])
    np.testing.assert_allclose(sep.score(q), expected)
    # raw k = 1 distances over separate libraries are the single-library score; normalised ones are not
    single = KNNScorer(k=1, metric="cosine", separate_domains=False).fit(x).score(q)
    np.testing.assert_allclose(knn.score(q), single)
    assert not np.allclose(sep.score(q), single)
    assert_clip_independent(sep.score, q)
    # training scores: exact leave-one-out, normalised the same way (what the ensembles and thresholds use)
    from asd_utils.scoring import fit_scores_from_training

    train_scores = fit_scores_from_training(SeparateLibraryKNN(), x, domains)
    expected_train = np.minimum((loo["source"] - sep.mean_["source"]) / sep.std_["source"],
                                (loo["target"] - sep.mean_["target"]) / sep.std_["target"])
    np.testing.assert_allclose(train_scores, expected_train)
    lonely = SeparateLibraryKNN().fit(x[:21], domains[:21])  # one target clip: borrows the pooled stats
    assert lonely.mean_["target"] == pytest.approx(lonely.mean_["source"])


def _section_scores(rng, n_train, n_test, shift=0.0):
    return SectionScores(test=rng.standard_normal(n_test) + shift, train=rng.standard_normal(n_train) * 2 + 5)


def test_checkpoint_ensemble_uses_training_statistics_only():
    index = _index()
    train_index, test_index = ioa.split_index(index)
    rng = np.random.default_rng(3)
    members = {"a": _section_scores(rng, len(train_index), len(test_index)),
               "b": _section_scores(rng, len(train_index), len(test_index), 4.0)}
    ens = myps.checkpoint_ensemble(members, train_index, test_index, {"a": 1.0, "b": 3.0})
    # by hand, per machine type: weighted mean of (s - mean(train)) / std(train)
    for m in ("m1", "m2"):
        tr = (train_index["machine"] == m).to_numpy()
        te = (test_index["machine"] == m).to_numpy()
        za = (members["a"].test[te] - members["a"].train[tr].mean()) / members["a"].train[tr].std()
        zb = (members["b"].test[te] - members["b"].train[tr].mean()) / members["b"].train[tr].std()
        np.testing.assert_allclose(ens.scores.test[te], (za + 3 * zb) / 4)

    # changing / removing / adding test clips never changes another clip's score
    def score_fn(rows):
        sub = test_index.loc[rows]
        parts = {n: SectionScores(test=s.test[rows], train=s.train) for n, s in members.items()}
        return myps.checkpoint_ensemble(parts, train_index, sub.reset_index(drop=True),
                                        {"a": 1.0, "b": 3.0}).scores.test

    assert_clip_independent(score_fn, np.arange(len(test_index)))
    # rescaling every test score leaves the normalisation (training statistics) as it was
    wild = {n: SectionScores(test=s.test * 100 + 7, train=s.train) for n, s in members.items()}
    shifted = myps.checkpoint_ensemble(wild, train_index, test_index, {"a": 1.0, "b": 3.0}).scores.test
    for m in ("m1", "m2"):
        tr = (train_index["machine"] == m).to_numpy()
        te = (test_index["machine"] == m).to_numpy()
        z = [(100 * members[n].test[te] + 7 - members[n].train[tr].mean()) / members[n].train[tr].std()
             for n in ("a", "b")]
        np.testing.assert_allclose(shifted[te], (z[0] + 3 * z[1]) / 4)
    with pytest.raises(ValueError, match="positive sum"):
        myps.checkpoint_ensemble(members, train_index, test_index, {"a": 0.0})


def test_replace_machines_and_write_decisions(tmp_path):
    index = _index()
    train_index, test_index = ioa.split_index(index)
    base = SectionScores(test=np.zeros(len(test_index)), train=np.zeros(len(train_index)))
    ma = SectionScores(test=np.ones(len(test_index)), train=np.ones(len(train_index)))
    mixed = myps.replace_machines(base, ma, train_index, test_index, ["m2"])
    np.testing.assert_array_equal(mixed.test, (test_index["machine"] == "m2").astype(float))
    np.testing.assert_array_equal(mixed.train, (train_index["machine"] == "m2").astype(float))
    files = myps.write_decisions(tmp_path, test_index, (np.arange(len(test_index)) % 2))
    assert [f.name for f in files] == ["decision_result_m1_section_00_test.csv",
                                       "decision_result_m2_section_00_test.csv"]
    assert files[0].read_text().splitlines()[:2] == ["section_00_m1_0.wav,0", "section_00_m1_1.wav,1"]


def _tiny_setup(seconds=1.0):
    rng = np.random.default_rng(0)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    waves, labels = [], []
    for c, f in enumerate((300.0, 900.0, 2000.0)):
        for _ in range(6):
            waves.append(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * 0.3 + 0.05 * rng.standard_normal(n))
            labels.append(c)
    return np.asarray(waves, dtype=np.float32), np.asarray(labels)


def test_train_and_embed_learns_caches_and_restores_without_training(tmp_path, monkeypatch):
    waves, labels = _tiny_setup()
    classes = ["a|00|x|source", "b|00|x|source", "c|00|x|source"]
    variants = {"EAT-LoRA": {"finetune": LORA, "learning_rates": [3e-3], "optimizer": {"name": "adamw"},
                             "scheduler": {"name": "cosine", "warmup_fraction": 0.0}, "batch_size": 6,
                             "steps": 12, "save_at": [0.5, 1.0]}}
    plans = myps.run_plans(variants, len(waves))
    kwargs = dict(eat_cfg=EAT_TINY, arcface_cfg={"scale": 10.0, "margin": 0.2}, checkpoint=None, fit_waves=waves,
                  fit_labels=labels, classes=classes, class_group=np.array([0, -1, -1]),
                  noise_pools=[0.1 * np.ones((1, SR), dtype=np.float32)], noise_cfg={"p": 0.5, "snr_db_range": [5, 20]},
                  embed_sets={"train": (waves, [f"c{i}" for i in range(len(waves))])}, crop_samples=SR // 2,
                  hop_samples=SR // 4, progress=False)
    snaps, histories = myps.train_and_embed(plans, cache_root=tmp_path, **kwargs)
    names = list(snaps)
    assert names == ["EAT-LoRA lr=0.003 step=6", "EAT-LoRA lr=0.003 step=12"]
    last = snaps[names[-1]]
    assert last.embeddings["train"].shape == (18, 64) and last.centres.shape == (3, 64)
    # three tones: the share of clips nearest their own class centre (k / 18) grows with training,
    # from chance at the half-way snapshot (6 / 18 on this seed) by at least four clips
    accuracies = [snaps[name].accuracy("train", labels) * 18 for name in names]
    assert accuracies == pytest.approx(np.round(accuracies), abs=1e-9)
    assert accuracies[1] >= accuracies[0] + 4
    assert histories["EAT-LoRA lr=0.003"][-1]["loss"] < histories["EAT-LoRA lr=0.003"][0]["loss"]

    def no_training(*args, **kw):
        raise AssertionError("a warm rerun must neither train nor embed")

    for name in ("build_model", "train_run", "make_training_loader", "SnapshotBank"):
        monkeypatch.setattr(myps, name, no_training)
    again, histories2 = myps.train_and_embed(plans, cache_root=tmp_path, **kwargs)
    for name in names:
        np.testing.assert_array_equal(again[name].embeddings["train"], snaps[name].embeddings["train"])
    assert histories2 == histories
    monkeypatch.undo()
    # without a cache the same run gives the same embeddings (deterministic training)
    uncached, _ = myps.train_and_embed(plans, cache_root=None, **kwargs)
    np.testing.assert_allclose(uncached[names[-1]].embeddings["train"], last.embeddings["train"], atol=1e-5)


def test_snapshot_round_trip_and_bank(tmp_path):
    model, _ = _model(LORA)
    head = myps.make_head(3, model.dim, {"scale": 30.0, "margin": 0.5})
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.add_(0.1)
    path = myps.save_snapshot(tmp_path / "s.pt", model, head, epoch=2, step=10)
    fresh, _ = _model(LORA)
    fresh_head = myps.make_head(3, model.dim, {"scale": 30.0, "margin": 0.5})
    state = myps.load_snapshot(path, fresh, fresh_head)
    assert state["step"] == 10
    waves = 0.1 * torch.randn(3, SR // 2, generator=torch.Generator().manual_seed(4))
    model.eval()
    fresh.eval()
    bank = myps.SnapshotBank({"orig": model, "copy": fresh})
    out = bank.split(bank(waves).numpy())
    np.testing.assert_allclose(out["orig"], out["copy"], atol=1e-6)
    with torch.inference_mode():
        np.testing.assert_allclose(out["orig"], model(waves).numpy(), atol=1e-6)
    full, _ = _model({"mode": "full"})
    with pytest.raises(ValueError, match="does not fit"):
        myps.load_snapshot(path, full, fresh_head)


def test_mechanism_scores_per_machine_type(tmp_path):
    index = _index(n_src=8, n_tgt=2, n_test=4)
    train_index, test_index = ioa.split_index(index)
    rng = np.random.default_rng(6)
    waves_train = 0.1 * rng.standard_normal((len(train_index), 8000))
    waves_test = 0.1 * rng.standard_normal((len(test_index), 8000))
    waves_test[1::2] += 0.5 * (np.arange(8000) % 400 == 0)  # impacts in the "anomalies"
    cfg = {"wavelet_level": 3, "n_segments": 8}
    cache = {"cache_dir": tmp_path, "cache_ingredients": {"clips": "train", "cfg": cfg}}
    ind_train = myps.mechanism_indicators(waves_train, train_index["machine"].to_numpy(), cfg, sample_rate=SR,
                                          geometries={"m1": {"n_elements": 9, "d_over_D": 0.28}}, **cache)
    assert "bpfo_db" in ind_train["m1"].columns and "bpfo_db" not in ind_train["m2"].columns
    again = myps.mechanism_indicators(waves_train * 0, train_index["machine"].to_numpy(), cfg, sample_rate=SR,
                                      **cache)  # read from the cache
    pd.testing.assert_frame_equal(again["m1"], ind_train["m1"])
    ind_test = myps.mechanism_indicators(waves_test, test_index["machine"].to_numpy(), cfg, sample_rate=SR,
                                         geometries={"m1": {"n_elements": 9, "d_over_D": 0.28}})
    scores, fitted, decisions = myps.mechanism_scores(ind_train, ind_test, train_index, test_index,
                                                      {"threshold": 3.5}, n_splits=2)
    assert np.isfinite(scores.test).all() and np.isfinite(scores.train).all()
    anomalous = test_index["label"].eq("anomaly").to_numpy()
    assert scores.test[anomalous].min() > scores.test[~anomalous].max()
    assert decisions[anomalous].all()
    assert set(fitted) == {"m1", "m2"}
