"""Mechanism-based analysis: robust baselines, directional exceedances, score and decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from clip_independence import assert_clip_independent
from sklearn.base import clone

from asd_utils.scoring import fit_scores_from_training
from asd_utils.signal.mechanism import DIRECTIONS, INDICATORS, IndicatorExtractor, MechanismScorer, robust_scale


def _table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"kurtosis": 3 + 0.1 * rng.standard_normal(n),
                         "wavelet_entropy": 0.9 + 0.01 * rng.standard_normal(n),
                         "rotation_hz": 50 + rng.standard_normal(n)})


def test_robust_scale_is_median_and_scaled_mad():
    values = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0], [100.0, 5.0]])
    med, scale = robust_scale(values)
    np.testing.assert_allclose(med, [3.0, 5.0])
    assert scale[0] == pytest.approx(1.4826 * 1.0)  # |x - 3| = 2, 1, 0, 1, 97 -> MAD 1
    assert scale[1] == pytest.approx(1e-9 * 6.0)    # constant: floor, no division by zero


def test_directional_zscores_exceedances_and_score_by_hand():
    train = _table()
    scorer = MechanismScorer(threshold=3.0).fit(train)
    assert scorer.feature_names_ == ["kurtosis", "wavelet_entropy", "rotation_hz"]
    np.testing.assert_allclose(scorer.sign_, [1.0, -1.0, 0.0])  # up, down, both
    med, scale = robust_scale(train.to_numpy())
    test = pd.DataFrame({"kurtosis": [med[0] + 5 * scale[0], med[0] - 5 * scale[0], med[0]],
                         "wavelet_entropy": [med[1], med[1], med[1] - 4 * scale[1]],
                         "rotation_hz": [med[2], med[2] - 6 * scale[2], med[2]]})
    z = scorer.zscores(test)
    np.testing.assert_allclose(z, [[5, 0, 0], [-5, 0, 6], [0, 4, 0]], atol=1e-9)
    # a drop of kurtosis is not a fault sign; a frequency shift either way is
    np.testing.assert_array_equal(scorer.exceedances(test), [[True, False, False], [False, False, True],
                                                             [False, True, False]])
    np.testing.assert_array_equal(scorer.decide(test), [1, 1, 1])
    softplus = lambda v: np.log1p(np.exp(v))  # noqa: E731
    expected = [softplus(2) + 2 * softplus(-3), softplus(-8) + softplus(-3) + softplus(3),
                softplus(-3) + softplus(1) + softplus(-3)]
    np.testing.assert_allclose(scorer.score(test), expected)
    # a clip at the baseline scores lower than any of them and is not flagged
    baseline = pd.DataFrame([dict(zip(scorer.feature_names_, med))])
    assert scorer.score(baseline)[0] < scorer.score(test).min()
    assert scorer.decide(baseline)[0] == 0
    assert MechanismScorer(threshold=3.0, min_exceedances=2).fit(train).decide(test).tolist() == [0, 0, 0]


def test_array_input_takes_indicator_names_and_custom_directions():
    train = _table()
    by_frame = MechanismScorer().fit(train).score(train.iloc[:5])
    by_array = MechanismScorer(indicators=list(train.columns)).fit(train.to_numpy()).score(train.to_numpy()[:5])
    np.testing.assert_allclose(by_array, by_frame)
    anonymous = MechanismScorer().fit(train.to_numpy())
    assert anonymous.feature_names_ == ["x0", "x1", "x2"] and (anonymous.sign_ == 0).all()
    flipped = MechanismScorer(directions={"kurtosis": "down"}).fit(train)
    assert flipped.sign_[0] == -1.0
    with pytest.raises(ValueError, match="'up', 'down' or 'both'"):
        MechanismScorer(directions={"kurtosis": "sideways"}).fit(train)
    with pytest.raises(ValueError, match="3 columns"):
        MechanismScorer(indicators=["a", "b"]).fit(train.to_numpy())
    with pytest.raises(RuntimeError, match="not fitted"):
        MechanismScorer().score(train)
    with pytest.raises(ValueError, match="NaN"):
        MechanismScorer().fit(train.assign(kurtosis=np.nan))


def test_separate_domain_baselines_take_the_closer_one():
    rng = np.random.default_rng(1)
    source = pd.DataFrame({"rotation_hz": 50 + rng.standard_normal(30)})
    target = pd.DataFrame({"rotation_hz": 80 + rng.standard_normal(10)})
    train = pd.concat([source, target], ignore_index=True)
    domains = ["source"] * 30 + ["target"] * 10
    test = pd.DataFrame({"rotation_hz": [50.0, 80.0, 65.0]})
    sep = MechanismScorer(separate_domains=True).fit(train, domains)
    assert set(sep.median_) == {"source", "target"}
    s = sep.score(test)
    assert s[0] < 0.1 and s[1] < 0.1 and s[2] > 1.0
    one = MechanismScorer().fit(train, domains)
    assert one.score(test)[1] > s[1]  # one baseline: the target clip looks odd


def test_scoring_contract_clone_cross_fitting_and_clip_independence():
    train = _table(30)
    scorer = MechanismScorer(indicators=list(train.columns))
    fitted = clone(scorer).fit(train.to_numpy())
    train_scores = fit_scores_from_training(scorer, train.to_numpy(), None, n_splits=3)
    assert train_scores.shape == (30,) and np.isfinite(train_scores).all()
    test = _table(12, seed=5).to_numpy().copy()
    test[3] += [2.0, -0.2, 10.0]
    assert_clip_independent(fitted.score, test)
    assert_clip_independent(lambda rows: fitted.decide(rows).astype(float), test)


def test_extractor_rows_independent_and_directions_cover_every_indicator():
    rng = np.random.default_rng(2)
    waves = 0.1 * rng.standard_normal((6, 8000))
    extractor = IndicatorExtractor(wavelet_level=3, n_segments=8, batch_size=4)
    assert_clip_independent(lambda w: extractor.transform(w)["kurtosis"].to_numpy(), waves, atol=1e-12)
    assert_clip_independent(lambda w: extractor.transform(w)["envelope_peak_db"].to_numpy(), waves, atol=1e-9)
    assert set(INDICATORS) <= set(DIRECTIONS)
    with pytest.raises(ValueError, match="geometry"):
        IndicatorExtractor(geometry=3).names  # noqa: B018


def test_report_rules_for_kurtosis_and_crest_factor():
    """Report 001: "kurtosis≈3" normal, anomalous at "kurtosis (>6)" or a sharp rise of the crest
    factor; the other indicators keep the robust z-rule."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"kurtosis": 3.0 + 0.01 * rng.standard_normal(50),
                          "crest_factor": 4.0 + 0.01 * rng.standard_normal(50),
                          "rms_db": -30.0 + rng.standard_normal(50)})
    test = pd.DataFrame({"kurtosis": [5.5, 6.5, 3.0, 3.0], "crest_factor": [4.0, 4.0, 5.9, 6.1],
                         "rms_db": [-30.0] * 4})
    report = MechanismScorer(threshold=3.5, kurtosis_limit=6.0, crest_rise=1.5).fit(train)
    ex = report.exceedances(test)
    names = report.feature_names_
    k, c = names.index("kurtosis"), names.index("crest_factor")
    # kurtosis 5.5 is 250 MADs above its baseline, yet within the report's limit of 6
    assert ex[:, k].tolist() == [False, True, False, False]
    assert ex[:, c].tolist() == [False, False, False, True]  # 1.5 x the median crest factor of 4.0 = 6.0
    assert report.decide(test).tolist() == [0, 1, 0, 1]
    np.testing.assert_allclose(report.zscores(test)[:, k], 3.5 * test["kurtosis"] / 6.0)
    robust = MechanismScorer(threshold=3.5).fit(train)  # the alternative: robust z for every indicator
    assert robust.exceedances(test)[:, k].tolist() == [True, True, False, False]


def test_estimated_geometry_puts_bpfo_on_the_dominant_envelope_line():
    from asd_utils.signal.bearing import bearing_frequencies, estimate_geometry

    rot = np.array([25.0, 30.0, 29.0, 31.0])
    g, source = estimate_geometry(4.4 * rot, rot)   # dominant line at order 4.4 -> 11 elements at d/D = 0.2
    assert source == "envelope line"
    assert g.n_elements == 11 and g.element_diameter / g.pitch_diameter == pytest.approx(0.2)
    lines = bearing_frequencies(rot, g)
    np.testing.assert_allclose(lines["BPFO"], 4.4 * rot)
    np.testing.assert_allclose(lines["BPFI"], 6.6 * rot)  # 0.6 n f_r
    # lines at shaft harmonics (or below any bearing's BPFO) do not qualify: a typical bearing instead
    g, source = estimate_geometry(np.array([1.0, 2.0, 3.0, 1.02]) * rot, rot)
    assert source == "typical bearing" and g.n_elements == 9
    with pytest.raises(ValueError, match="estimate"):
        estimate_geometry([np.nan], [0.0])
