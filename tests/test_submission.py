"""Tests of asd_utils.evaluation.submission: file names, contents, round trip, gamma threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from asd_utils.evaluation.submission import (
    gamma_threshold,
    read_submission,
    section_tag,
    write_submission,
    write_submissions,
)


def test_gamma_threshold_matches_scipy_fit_and_ppf():
    sample = scipy.stats.gamma.rvs(2.5, loc=0.3, scale=1.7, size=500, random_state=0)
    shape, loc, scale = scipy.stats.gamma.fit(sample)  # all free, as the official baseline
    expected = scipy.stats.gamma.ppf(0.9, shape, loc=loc, scale=scale)
    assert gamma_threshold(sample) == pytest.approx(expected, rel=1e-12)
    assert gamma_threshold(sample, quantile=0.5) < gamma_threshold(sample)
    # Roughly 10 % of the training scores lie above the 0.9 threshold.
    assert 0.05 < np.mean(sample > gamma_threshold(sample)) < 0.15


def test_gamma_threshold_degenerate_and_errors():
    assert gamma_threshold([2.0, 2.0, 2.0, 2.0]) == 2.0
    with pytest.raises(ValueError):
        gamma_threshold([])
    with pytest.raises(ValueError):
        gamma_threshold([1.0, np.nan, 2.0])
    with pytest.raises(ValueError):
        gamma_threshold([1.0, 2.0, 3.0], quantile=1.0)


def test_section_tag():
    assert section_tag(0) == "00"
    assert section_tag("3") == "03"
    assert section_tag("section_01") == "01"
    with pytest.raises(ValueError):
        section_tag("ab")


def test_write_submission_exact_files(tmp_path):
    names = ["section_00_0000.wav", "/x/y/section_00_0001.wav", "section_00_0002.wav"]
    scores = [0.5, 1.0, 1.5]
    score_path, decision_path = write_submission(tmp_path / "sub", "fan", "00", names, scores, 1.0)
    assert score_path.name == "anomaly_score_fan_section_00_test.csv"
    assert decision_path.name == "decision_result_fan_section_00_test.csv"
    assert score_path.read_text() == (
        "section_00_0000.wav,0.5\nsection_00_0001.wav,1.0\nsection_00_0002.wav,1.5\n"
    )
    # 1 iff score > threshold: a score equal to the threshold is normal.
    assert (
        decision_path.read_text() == "section_00_0000.wav,0\nsection_00_0001.wav,0\nsection_00_0002.wav,1\n"
    )
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [score_path.name, decision_path.name]


def test_round_trip_and_decisions(tmp_path):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=50)
    names = [f"section_01_source_test_normal_{i:04d}_a_1.wav" for i in range(50)]
    threshold = 0.3
    sp, dp = write_submission(tmp_path, "ToyCar", 1, names, scores, threshold)
    back = read_submission(sp)
    assert back["file_name"].tolist() == names
    np.testing.assert_array_equal(back["score"].to_numpy(), scores)  # repr round-trips exactly
    dec = read_submission(dp)
    assert dec["decision"].dtype == np.int64
    np.testing.assert_array_equal(dec["decision"].to_numpy(), (scores > threshold).astype(int))


def test_write_submission_errors(tmp_path):
    with pytest.raises(ValueError, match="2 file names but 3 scores"):
        write_submission(tmp_path, "fan", "00", ["a.wav", "b.wav"], [1, 2, 3], 0.5)
    with pytest.raises(ValueError, match="finite"):
        write_submission(tmp_path, "fan", "00", ["a.wav"], [np.nan], 0.5)
    with pytest.raises(FileNotFoundError):
        read_submission(tmp_path / "missing.csv")


def test_write_submissions_per_section_threshold(tmp_path):
    rng = np.random.default_rng(2)
    train_index = pd.DataFrame({"machine": ["fan"] * 100 + ["valve"] * 100, "section": ["00"] * 200})
    train_scores = np.concatenate([rng.gamma(2.0, 1.0, 100), 10 + rng.gamma(2.0, 1.0, 100)])
    test_index = pd.DataFrame(
        {
            "machine": ["valve", "fan", "fan", "valve"],
            "section": ["00"] * 4,
            "file_name": ["v0.wav", "f0.wav", "f1.wav", "v1.wav"],
        }
    )
    test_scores = np.array([11.0, 0.5, 50.0, 40.0])
    written = write_submissions(tmp_path, test_index, test_scores, train_index, train_scores)
    assert sorted(written) == [("fan", "00"), ("valve", "00")]
    fan = read_submission(written[("fan", "00")][1])
    assert fan["file_name"].tolist() == ["f0.wav", "f1.wav"]
    assert fan["decision"].tolist() == [0, 1]
    thr_valve = gamma_threshold(train_scores[100:])
    valve = read_submission(written[("valve", "00")][1])
    assert valve["decision"].tolist() == [int(11.0 > thr_valve), 1]
    with pytest.raises(ValueError, match="no training scores"):
        write_submissions(tmp_path, test_index, test_scores, train_index.iloc[:100], train_scores[:100])


def test_each_section_gets_the_threshold_of_its_own_training_scores(tmp_path):
    """Two sections whose training scores lie far apart: a clip scored 6.0 is anomalous for
    section 00 (training scores around 2) and normal for section 01 (training scores around 100).
    One threshold pooled over both sections would call both clips the same."""
    rng = np.random.default_rng(3)
    low, high = rng.gamma(2.0, 1.0, 200), 100.0 + rng.gamma(2.0, 1.0, 200)
    train_index = pd.DataFrame({"machine": ["fan"] * 400, "section": ["00"] * 200 + ["01"] * 200})
    test_index = pd.DataFrame({"machine": ["fan"] * 4, "section": ["00", "00", "01", "01"],
                               "file_name": ["a.wav", "b.wav", "c.wav", "d.wav"]})
    test_scores = np.array([6.0, 1.0, 6.0, 110.0])
    written = write_submissions(tmp_path, test_index, test_scores, train_index, np.concatenate([low, high]))
    thr_00, thr_01 = gamma_threshold(low), gamma_threshold(high)
    assert 3.0 < thr_00 < 6.0 and 100.0 < thr_01 < 110.0  # the hand-worked case's premise
    assert read_submission(written[("fan", "00")][1])["decision"].tolist() == [1, 0]
    assert read_submission(written[("fan", "01")][1])["decision"].tolist() == [0, 1]
