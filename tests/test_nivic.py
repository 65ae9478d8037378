"""Report 002 glue (asd_utils.methods.nivic): high-pass rule, simulated clips, classes, training, kNN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from clip_independence import assert_clip_independent

from asd_utils.methods import nivic

SR = 16000


def _tone_clips(freq: float, n: int, seconds: float, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return np.stack([np.sin(2 * np.pi * freq * rng.uniform(0.99, 1.01) * t + rng.uniform(0, 6.28))
                     + noise * rng.normal(size=t.size) for _ in range(n)]).astype(np.float32)


def test_system_names_are_the_fixed_ones():
    assert list(nivic.SYSTEMS) == ["Full", "No pseudo-labels", "No StatEx/FeatEx", "No high-pass",
                                   "No supplemental mixing"]
    assert nivic.system_options("Full") == {"pseudo_labels": True, "ssl": True, "highpass": True, "supplemental": True}
    assert not nivic.system_options("No high-pass")["highpass"]
    with pytest.raises(ValueError, match="unknown system"):
        nivic.system_options("Everything")


def test_highpass_rule_uses_the_training_spectrum():
    rng = np.random.default_rng(0)
    waves = np.concatenate([_tone_clips(400.0, 4, 0.5, rng), _tone_clips(3000.0, 4, 0.5, rng)])
    index = pd.DataFrame({"machine": ["low"] * 4 + ["high"] * 4})
    cfg = {"cutoff_hz": 1000.0, "min_high_share": 0.5, "fmin": 200.0, "fmax": 8000.0}
    table = nivic.highpass_decision(index, waves, cfg).set_index("machine")
    assert table.loc["high", "highpass"] and not table.loc["low", "highpass"]
    assert table.loc["high", "high_share"] > 0.9 and table.loc["low", "high_share"] < 0.1


def test_apply_highpass_only_on_chosen_machines():
    rng = np.random.default_rng(0)
    waves = _tone_clips(100.0, 2, 0.5, rng, noise=0.0)
    out = nivic.apply_highpass(waves, ["a", "b"], ["b"], cutoff_hz=1000.0)
    np.testing.assert_array_equal(out[0], waves[0])
    assert np.sqrt(np.mean(out[1, 2000:-2000] ** 2)) < 1e-3 * np.sqrt(np.mean(waves[1] ** 2))
    assert out.dtype == np.float32
    with pytest.raises(ValueError):
        nivic.apply_highpass(waves, ["a"], ["a"], cutoff_hz=1000.0)


def _supplemental(machines, kinds, names) -> pd.DataFrame:
    return pd.DataFrame({"machine": machines, "section": ["00"] * len(names), "domain": ["source"] * len(names),
                         "supplemental_kind": kinds, "file_name": names})


def test_simulated_clips_mix_clean_and_noise_at_the_drawn_snr():
    rng = np.random.default_rng(0)
    sup = _supplemental(["m", "m", "m", "n"], ["clean", "noise", "clean", "clean"],
                        ["c0.wav", "n0.wav", "c1.wav", "c2.wav"])
    clean = _tone_clips(500.0, 3, 0.25, rng, noise=0.0)
    noise = rng.normal(size=(1, 4000)).astype(np.float32)
    cfg = {"mixes_per_clean": 2, "snr_db": [5.0, 5.0], "noise_from": "same_section"}
    waves, rows = nivic.simulate_supplemental(sup, clean, noise, cfg, seed=0)
    # same_section: machine n has no noise clip of its own: no simulated clip; m: 2 clean x 2 mixes
    assert len(waves) == 4 and set(rows["machine"]) == {"m"}
    assert (rows["attributes"] == "simulated").all()
    residual = waves[0] - clean[0]
    snr = 10 * np.log10(np.mean(clean[0].astype(np.float64) ** 2) / np.mean(residual.astype(np.float64) ** 2))
    assert snr == pytest.approx(5.0, abs=0.01)
    waves2, _ = nivic.simulate_supplemental(sup, clean, noise, cfg, seed=0)
    np.testing.assert_array_equal(waves, waves2)  # seeded
    # other_types (the default): only n's clean clip meets m's noise; m's own noise is not used for m
    waves3, rows3 = nivic.simulate_supplemental(sup, clean, noise, {**cfg, "noise_from": "other_types"}, seed=0)
    assert len(waves3) == 2 and set(rows3["machine"]) == {"n"}
    assert all(f.startswith("sim_c2.wav+n0.wav") for f in rows3["file_name"])
    with pytest.raises(ValueError, match="noise_from"):
        nivic.simulate_supplemental(sup, clean, noise, {**cfg, "noise_from": "anywhere"}, seed=0)


def test_dcase2025_supplemental_layout_gives_simulated_clips():
    """One kind per type (DCASE 2025): type a ships clean clips, types b and c noise only. Mixing
    within a type gives nothing; mixing clean sound with the other types' noise gives every clean
    clip its mixtures."""
    rng = np.random.default_rng(1)
    sup = _supplemental(["a", "a", "b", "c"], ["clean", "clean", "noise", "noise"],
                        ["a0.wav", "a1.wav", "b0.wav", "c0.wav"])
    clean = _tone_clips(700.0, 2, 0.25, rng, noise=0.0)
    noise = rng.normal(size=(2, 4000)).astype(np.float32)
    cfg = {"mixes_per_clean": 3, "snr_db": [0.0, 10.0]}
    none, _ = nivic.simulate_supplemental(sup, clean, noise, {**cfg, "noise_from": "same_section"}, seed=0)
    assert len(none) == 0
    waves, rows = nivic.simulate_supplemental(sup, clean, noise, cfg, seed=0)
    assert len(waves) == 6 and set(rows["machine"]) == {"a"}
    partners = {f.split("+")[1].split("@")[0] for f in rows["file_name"]}
    assert partners <= {"b0.wav", "c0.wav"}


def test_class_table_pseudo_labels_and_simulated_classes():
    from asd_utils.training import build_class_labels

    train = pd.DataFrame({"machine": ["a", "a", "h", "h", "h"], "section": ["00"] * 5,
                          "domain": ["source", "source", "source", "source", "target"],
                          "attributes": ["x_1", "x_2", "noAttribute", "noAttribute", "noAttribute"],
                          "file_name": [f"f{i}.wav" for i in range(5)]})
    pseudo = pd.DataFrame({"machine": ["h", "h", "h"], "file_name": ["f2.wav", "f3.wav", "f4.wav"],
                           "pseudo": ["source-0", "source-1", "target-0"]})
    sim = pd.DataFrame({"machine": ["a"], "section": ["00"], "domain": ["source"], "attributes": ["simulated"],
                        "file_name": ["sim.wav"]})
    rows = nivic.class_table(train, pseudo, use_pseudo=True, simulated=sim)
    assert rows[nivic.CLASS_COLUMN].tolist() == ["x_1", "x_2", "pseudo-source-0", "pseudo-source-1",
                                                 "pseudo-target-0", "simulated"]
    assert rows["simulated"].tolist() == [False] * 5 + [True]
    _, classes = build_class_labels(rows, ["machine", "section", nivic.CLASS_COLUMN, "domain"])
    assert len(classes) == 6
    plain = nivic.class_table(train, pseudo, use_pseudo=False)
    _, classes = build_class_labels(plain, ["machine", "section", nivic.CLASS_COLUMN, "domain"])
    assert len(classes) == 4  # hidden type: one class per domain


def _toy_cfg() -> dict:
    return {"sample_rate": SR, "crop_seconds": 0.25, "embed_hop_seconds": 0.125, "n_fft": 512, "hop_length": 256,
            "n_mels": 16, "fmin": 200.0, "fmax": 8000.0, "width": 0.125, "emb_dim": 16, "se_ratio": 4,
            "n_subclusters": 2, "statex_prob": 0.5, "featex_prob": 0.5, "loss_weights": [1.0, 0.0, 1.0],
            "trainable_centres": [False, True, True], "mixup_alpha": None, "mixup_prob": 0.5,
            "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 16, "epochs": 8, "embed_batch_size": 32,
            "final_bn_relu": True}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    rng = np.random.default_rng(0)
    freqs = [600.0, 1500.0, 3500.0]
    waves = np.concatenate([_tone_clips(f, 16, 0.5, rng) for f in freqs])
    labels = np.repeat(np.arange(3), 16)
    held_waves = np.concatenate([_tone_clips(f, 4, 0.5, rng) for f in freqs])
    held_labels = np.repeat(np.arange(3), 4)
    run_dir = tmp_path_factory.mktemp("nivic_run")
    result = nivic.train_model(waves, labels, ["c0", "c1", "c2"], _toy_cfg(), ssl=True, seed=0,
                               heldout_waves=held_waves, heldout_labels=held_labels, progress=False,
                               checkpoint_dir=run_dir)
    return result, waves, labels, run_dir


def test_model_learns_a_separable_toy_set(toy_run):
    result, _, _, _ = toy_run
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.heldout_accuracy >= 0.9, (result.heldout_accuracy, losses)


def test_finished_run_is_restored_not_retrained(toy_run):
    result, waves, labels, run_dir = toy_run
    again = nivic.train_model(waves, labels, ["c0", "c1", "c2"], _toy_cfg(), ssl=True, seed=0, progress=False,
                              checkpoint_dir=run_dir)
    assert again.history == result.history
    for a, b in zip(again.model.state_dict().values(), result.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_knn_scores_are_per_clip(toy_run):
    result, waves, labels, _ = toy_run
    cfg = _toy_cfg()
    train_index = pd.DataFrame({"machine": ["m"] * len(waves), "section": ["00"] * len(waves),
                                "domain": ["source"] * (len(waves) - 4) + ["target"] * 4})
    train_emb = nivic.embed(result.model, waves, cfg)
    rng = np.random.default_rng(5)
    test_waves = np.concatenate([_tone_clips(1500.0, 4, 0.5, rng), _tone_clips(5000.0, 4, 0.5, rng)])
    scoring = {"k": 1, "metric": "cosine", "separate_domains": True, "l2_normalise": True, "n_splits": 2}

    def score_fn(items):
        test_index = pd.DataFrame({"machine": ["m"] * len(items), "section": ["00"] * len(items)})
        return nivic.score(train_index, train_emb, test_index, nivic.embed(result.model, items, cfg), scoring).test

    scores = score_fn(test_waves)
    assert scores[4:].mean() > scores[:4].mean()  # an unseen tone lies farther from the training clips
    assert_clip_independent(score_fn, test_waves, atol=1e-5)


def test_kernel_weight_decay_equals_a_keras_l2_kernel_regulariser():
    """Adam with weight_decay = 2e-5 on the kernels only takes the step of Adam on
    loss + 1e-5 * sum(kernel ** 2) (ssl4asd's ``l2(1e-5)``); biases and norms are not decayed."""
    from asd_utils.training.trainer import build_optimizer, weight_decay_groups

    torch.manual_seed(0)
    make = lambda: torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).double()  # noqa: E731
    a, b = make(), make()
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 4, dtype=torch.float64)
    groups = weight_decay_groups(a, list(a.parameters()), "kernels", 2e-5)
    assert [len(g["params"]) for g in groups] == [1, 3]  # the Linear kernel; bias, BN weight, BN bias
    opt_a = build_optimizer(groups, "adam", lr=0.1)
    opt_b = build_optimizer(list(b.parameters()), "adam", lr=0.1)
    for _ in range(3):
        opt_a.zero_grad()
        a(x).pow(2).mean().backward()
        opt_a.step()
        opt_b.zero_grad()
        (b(x).pow(2).mean() + 1e-5 * b[0].weight.pow(2).sum()).backward()
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="kernels"):
        weight_decay_groups(a, list(a.parameters()), "biases", 1.0)


def test_nivic_paper_config_follows_ssl4asd():
    """paper: every training clip trains; ssl4asd's l2(1e-5) kernel decay; B_avg over all centres;
    no BatchNorm + ReLU before the pooling; float32."""
    from asd_utils.config import load_config

    model = load_config("04_nivic", "paper")["model"]
    assert model["holdout_fraction"] == 0.0
    assert model["optimizer"]["weight_decay"] == 2.0e-5 and model["optimizer"]["weight_decay_on"] == "kernels"
    assert model["adacos_b_avg"] == "all" and model["final_bn_relu"] is False
    assert model["mixed_precision"] is False
    built, heads = nivic.build_model({**model, "width": 0.125, "n_mels": 16, "emb_dim": 8, "n_subclusters": 2,
                                      "crop_seconds": 0.25}, 3, ssl=True)
    assert built.spec_branch.final_norm is None
    assert all(h.b_avg == "all" for h in heads.heads)
    with_norm, _ = nivic.build_model({**model, "width": 0.125, "n_mels": 16, "emb_dim": 8, "n_subclusters": 2,
                                      "crop_seconds": 0.25, "final_bn_relu": True}, 3, ssl=True)
    assert with_norm.spec_branch.final_norm is not None



def test_cached_embeddings_key_clips_at_their_own_lengths(tmp_path):
    """``pipeline.cached_embeddings`` (the cache of a system's embeddings in its run folder) takes
    a list of clips at their own lengths: the same clips load without embedding, a changed clip
    embeds again; without a run folder nothing is written."""
    from asd_utils.methods.pipeline import cached_embeddings

    calls = []

    def compute(clips):
        calls.append(len(clips))
        return np.array([[len(c), float(np.sum(c))] for c in clips], dtype=np.float32)

    clips = [np.ones(3, np.float32), np.full(5, 2.0, np.float32)]
    first = cached_embeddings(tmp_path, "test", clips, lambda: compute(clips))
    np.testing.assert_array_equal(first, [[3, 3], [5, 10]])
    again = cached_embeddings(tmp_path, "test", list(clips), lambda: compute(clips))
    assert calls == [2] and again.dtype == np.float32
    np.testing.assert_array_equal(again, first)
    changed = [clips[0], np.full(4, 2.0, np.float32)]
    np.testing.assert_array_equal(cached_embeddings(tmp_path, "test", changed, lambda: compute(changed)),
                                  [[3, 3], [4, 8]])
    assert calls == [2, 2] and len(list(tmp_path.glob("embeddings_test_*.npz"))) == 2
    cached_embeddings(None, "test", clips, lambda: compute(clips))
    assert calls == [2, 2, 2] and len(list(tmp_path.glob("*.npz"))) == 2
