"""Pseudo attribute labels (asd_utils.methods.pseudo_labels): both methods, the choice rule, the scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asd_utils.methods import pseudo_labels as pl

SR = 16000


def _blobs(seed: int = 0, n_per: int = 40, dims: int = 6):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * dims, [8.0] + [0.0] * (dims - 1), [0.0, 8.0] + [0.0] * (dims - 2)])
    x = np.concatenate([c + rng.normal(size=(n_per, dims)) for c in centres])
    return x, np.repeat(np.arange(3), n_per)


def test_clustering_recovers_separated_clusters_and_bic_picks_their_number():
    x, truth = _blobs()
    fit = pl.cluster_labels(x, max_components=6, pca_components=4)
    assert fit.n_labels == 3
    assert int(np.argmin(fit.bic)) + 1 == 3
    assert pl.score_against_truth(truth, fit.labels)["ari"] > 0.9
    # the fitted PCA + mixture labels new clips of the same clusters consistently
    x2, truth2 = _blobs(seed=1)
    assert pl.score_against_truth(truth2, fit.predict(x2))["ari"] > 0.9


def test_clustering_of_one_blob_finds_one_group():
    rng = np.random.default_rng(0)
    fit = pl.cluster_labels(rng.normal(size=(80, 5)), max_components=5, pca_components=4)
    assert fit.n_labels == 1
    assert pl.cluster_labels(rng.normal(size=(3, 5))).n_labels == 1  # too few clips


def _am_clip(f_mod: float, rng: np.random.Generator, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    carrier = rng.normal(size=t.size)  # broadband noise, amplitude-modulated
    return (1 + 0.8 * np.cos(2 * np.pi * f_mod * t + rng.uniform(0, 6.28))) * carrier * 0.1


def test_characteristic_frequency_labels_recover_modulation_rates():
    rng = np.random.default_rng(0)
    rates = np.repeat([4.0, 9.0, 21.0], 8)
    waves = np.stack([_am_clip(r * rng.uniform(0.98, 1.02), rng) for r in rates])
    freqs = pl.characteristic_frequencies(waves, sample_rate=SR, band=(1000.0, 6000.0), fmin=1.0, fmax=50.0)
    assert np.all(np.abs(freqs - rates) <= 1.0)
    fit = pl.quantise_frequencies(freqs, max_levels=5)
    assert fit.n_labels == 3
    assert pl.score_against_truth(rates, fit.labels)["ari"] > 0.9
    assert list(fit.labels[[0, 8, 16]]) == [0, 1, 2]  # ordered by frequency
    with pytest.raises(ValueError):
        pl.quantise_frequencies(np.array([1.0, -2.0, 3.0, 4.0]))


def test_stability_is_high_for_separated_clusters_and_zero_for_one_group():
    x, _ = _blobs()
    params = {"max_components": 5, "pca_components": 4}
    assert pl.stability("clustering", x, params, n_bootstrap=4) > 0.9
    rng = np.random.default_rng(0)
    assert pl.stability("clustering", rng.normal(size=(60, 4)), params, n_bootstrap=2) == 0.0


def test_choose_method_rule():
    summary = pd.DataFrame([
        {"method": "clustering", "domain": "source", "n_clips": 90, "n_labels": 3, "stability": 0.6},
        {"method": "clustering", "domain": "target", "n_clips": 10, "n_labels": 1, "stability": 0.0},
        {"method": "charfreq", "domain": "source", "n_clips": 90, "n_labels": 4, "stability": 0.9},
        {"method": "charfreq", "domain": "target", "n_clips": 10, "n_labels": 2, "stability": 0.5},
    ])
    assert pl.choose_method(summary) == "charfreq"
    # a method that finds one source group is not eligible, whatever its stability
    one = summary.copy()
    one.loc[one["method"] == "charfreq", "n_labels"] = 1
    assert pl.choose_method(one) == "clustering"
    none = one.copy()
    none["n_labels"] = 1
    assert pl.choose_method(none) is None
    assert pl.choose_method(summary, min_stability=0.95) is None


def test_pseudo_label_machine_per_domain(tmp_path):
    rng = np.random.default_rng(0)
    rates = np.array([5.0] * 10 + [13.0] * 10 + [5.0] * 4)
    waves = np.stack([_am_clip(r, rng) for r in rates])
    index = pd.DataFrame({"file_name": [f"c{i}.wav" for i in range(24)],
                          "domain": ["source"] * 20 + ["target"] * 4})
    cfg = {"clustering": {"n_mels": 16, "pca_components": 3}, "charfreq": {"band": [1000, 6000], "fmin": 1, "fmax": 50},
           "max_components": {"source": 4, "target": 2}, "n_bootstrap": 2}
    labels, summary = pl.pseudo_label_machine(index, waves, cfg, sample_rate=SR)
    assert list(labels.columns) == ["file_name", "domain", "charfreq_hz", "clustering", "charfreq"]
    assert set(summary["domain"]) == {"source", "target"} and set(summary["method"]) == set(pl.METHODS)
    assert all(lab.startswith(dom) for lab, dom in zip(labels["charfreq"], labels["domain"]))  # never mixes domains
    src = labels[labels["domain"] == "source"]
    assert pl.score_against_truth(rates[:20], src["charfreq"])["ari"] > 0.9


def test_scores_and_contingency_against_truth(tmp_path):
    true = np.array(["a", "a", "b", "b", "c", "c"])
    perfect = np.array([1, 1, 0, 0, 2, 2])
    s = pl.score_against_truth(true, perfect)
    assert s["ari"] == pytest.approx(1.0) and s["nmi"] == pytest.approx(1.0)
    assert s["n_true"] == 3 and s["n_pseudo"] == 3 and s["n_clips"] == 6
    merged = pl.score_against_truth(true, np.array([0, 0, 0, 0, 1, 1]))
    assert merged["ari"] < 1.0 and 0 < merged["nmi"] < 1.0
    table = pl.contingency(true, perfect)
    assert table.loc["a", 1] == 2 and table.values.sum() == 6
    with pytest.raises(ValueError):
        pl.score_against_truth(true, perfect[:3])


def test_read_true_attributes(tmp_path):
    assert pl.read_true_attributes(tmp_path) is None
    (tmp_path / "ground_truth_attributes.csv").write_text(
        "machine,file_name,attributes\nslider,x.wav,vel_300_ac_1\n")
    frame = pl.read_true_attributes(tmp_path)
    assert frame.to_dict("records") == [{"machine": "slider", "file_name": "x.wav", "attributes": "vel_300_ac_1"}]
    (tmp_path / "ground_truth_attributes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="ground_truth_attributes.csv"):
        pl.read_true_attributes(tmp_path)


def test_hidden_attribute_machines():
    index = pd.DataFrame({"machine": ["m1", "m1", "m2", "m3"],
                          "attributes": ["noAttribute", "noAttribute", "x_1", "noAttribute"]})
    assert pl.hidden_attribute_machines(index) == ["m1", "m3"]
