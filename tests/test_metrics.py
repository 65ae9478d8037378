"""Tests of asd_utils.evaluation.metrics on hand-worked cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asd_utils.evaluation.metrics import (
    EPS,
    dcase_table,
    domain_pair_aucs,
    evaluate,
    hmean,
    official_score,
    section_metrics,
)

# One section: source normals 0.1, 0.4; target normals 0.3, 0.6; anomalies 0.5 (source), 0.4 (target).
Y = [0, 0, 0, 0, 1, 1]
S = [0.1, 0.4, 0.3, 0.6, 0.5, 0.4]
D = ["source", "source", "target", "target", "source", "target"]


def test_section_metrics_by_counting_pairs():
    m = section_metrics(Y, S, D)
    # AUC (source): normals {0.1, 0.4} vs ALL anomalies {0.5, 0.4}:
    # 0.5>0.1, 0.5>0.4, 0.4>0.1 count 1, the tie 0.4=0.4 counts 1/2 -> 3.5 / 4.
    assert m["auc_source"] == pytest.approx(3.5 / 4)
    # AUC (target): normals {0.3, 0.6} vs {0.5, 0.4}: 0.5>0.3, 0.4>0.3 -> 2 / 4.
    assert m["auc_target"] == pytest.approx(2 / 4)
    # pAUC over all clips: the top score 0.6 is normal, so the ROC curve stays at TPR 0 up to
    # FPR 0.25 > 0.1: raw area 0; McClish: 0.5 * (1 + (0 - 0.005) / (0.1 - 0.005)) = 9/19.
    assert m["pauc"] == pytest.approx(9 / 19)


def test_anomalies_of_both_domains_count_in_each_auc():
    # A source anomaly scored lower than every normal lowers AUC (target) as well.
    y = [0, 0, 1, 1]
    s = [0.2, 0.3, 0.1, 0.9]
    d = ["source", "target", "source", "target"]
    m = section_metrics(y, s, d)
    assert m["auc_source"] == pytest.approx(0.5)  # normal 0.2 vs {0.1, 0.9}
    assert m["auc_target"] == pytest.approx(0.5)  # normal 0.3 vs {0.1, 0.9}


def test_pauc_mcclish_with_interpolation():
    # 5 normals, 2 anomalies: one anomaly above all, one tied with the top normal.
    # ROC: (0, 0) -> (0, 0.5) -> diagonal to (0.2, 1.0); at FPR 0.1 the TPR is 0.75.
    # Raw area up to 0.1: (0.5 + 0.75) / 2 * 0.1 = 0.0625.
    # McClish: 0.5 * (1 + (0.0625 - 0.005) / 0.095) = 61/76.
    y = [1, 1, 0, 0, 0, 0, 0]
    s = [0.9, 0.5, 0.5, 0.4, 0.3, 0.2, 0.1]
    d = ["source", "target", "source", "source", "target", "target", "source"]
    assert section_metrics(y, s, d)["pauc"] == pytest.approx(61 / 76)


def test_pauc_ten_normals():
    # 10 normals, one anomaly on top, one at the bottom: raw area 0.1 * 0.5 = 0.05 -> 14/19.
    y = [1] + [0] * 10 + [1]
    s = np.arange(12, 0, -1, dtype=float)
    d = ["source", "target"] * 6
    assert section_metrics(y, s, d)["pauc"] == pytest.approx(14 / 19)


def test_section_metrics_errors():
    with pytest.raises(ValueError, match="no normal clips of the target"):
        section_metrics([0, 1], [0.1, 0.2], ["source", "target"])
    with pytest.raises(ValueError, match="no anomalous"):
        section_metrics([0, 0], [0.1, 0.2], ["source", "target"])
    with pytest.raises(ValueError, match="same length"):
        section_metrics([0, 1], [0.1], ["source", "target"])
    with pytest.raises(ValueError, match="source' or 'target"):
        section_metrics([0, 1, 0], [0.1, 0.2, 0.3], ["source", "target", None])
    with pytest.raises(ValueError, match="NaN"):
        section_metrics([0, np.nan], [0.1, 0.2], ["source", "target"])


def test_hmean_floors_zero_at_eps():
    assert hmean([0.5, 0.25]) == pytest.approx(2 / (2 + 4))
    value = hmean([0.0, 1.0, 1.0])
    assert value == pytest.approx(3 / (1 / EPS + 2), rel=1e-12)
    assert 0 < value < 1e-14
    assert EPS == np.finfo(float).eps
    with pytest.raises(ValueError):
        hmean([])


def test_official_score_hand_computed():
    table = pd.DataFrame(
        {
            "machine": ["a", "b"],
            "section": ["00", "00"],
            "auc_source": [0.5, 1.0],
            "auc_target": [1.0, 0.5],
            "pauc": [0.25, 0.5],
        }
    )
    # 6 / (2 + 1 + 1 + 2 + 4 + 2) = 0.5
    assert official_score(table) == pytest.approx(0.5)


def _test_index():
    rows = []
    for machine in ("fan", "ToyCar"):
        rows += [
            (machine, "00", "source", 0.0),
            (machine, "00", "source", 0.0),
            (machine, "00", "target", 0.0),
            (machine, "00", "target", 0.0),
            (machine, "00", "source", 1.0),
            (machine, "00", "target", 1.0),
        ]
    return pd.DataFrame(rows, columns=["machine", "section", "domain", "is_anomaly"])


def test_evaluate_aligns_by_position_and_sorts():
    index = _test_index()
    scores = np.array(S + [0.0, 0.1, 0.2, 0.3, 0.8, 0.9])  # fan as above; ToyCar perfect
    # Shuffle rows and scores together: the result must not change.
    perm = np.random.default_rng(0).permutation(len(index))
    table = evaluate(index.iloc[perm].set_index(pd.Index(perm * 7)), scores[perm])
    assert list(table.columns) == ["machine", "section", "auc_source", "auc_target", "pauc", "hmean"]
    assert table["machine"].tolist() == ["ToyCar", "fan"]
    toy, fan = table.iloc[0], table.iloc[1]
    assert (toy.auc_source, toy.auc_target, toy.pauc) == (1.0, 1.0, 1.0)
    assert fan.auc_source == pytest.approx(0.875)
    assert fan.auc_target == pytest.approx(0.5)
    assert fan.pauc == pytest.approx(9 / 19)
    assert fan.hmean == pytest.approx(3 / (1 / 0.875 + 2 + 19 / 9))
    assert official_score(table) == pytest.approx(6 / (3 + 1 / 0.875 + 2 + 19 / 9))


def test_evaluate_errors():
    index = _test_index()
    with pytest.raises(ValueError, match="align"):
        evaluate(index, np.zeros(3))
    with pytest.raises(ValueError, match="lacks columns"):
        evaluate(index.drop(columns="domain"), np.zeros(len(index)))
    broken = index[~((index.machine == "fan") & (index.domain == "target") & (index.is_anomaly == 0))]
    with pytest.raises(ValueError, match="'fan'.*target"):
        evaluate(broken, np.zeros(len(broken)))


def test_dcase_table_layout():
    tidy = pd.DataFrame(
        {
            "system": ["A", "A", "A", "B", "B", "B"],
            "machine": ["fan", "fan", "valve", "fan", "fan", "valve"],
            "section": ["00", "01", "00", "00", "01", "00"],
            "auc_source": [0.6, 0.8, 0.5, 1.0, 1.0, 1.0],
            "auc_target": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
            "pauc": [0.5, 0.7, 1.0, 0.5, 0.5, 0.5],
        }
    )
    out = dcase_table(tidy, systems=["B", "A"])
    assert out.index.tolist() == ["B", "A"]
    assert out.columns.tolist() == [
        ("fan", "AUC-s"),
        ("fan", "AUC-t"),
        ("fan", "pAUC"),
        ("valve", "AUC-s"),
        ("valve", "AUC-t"),
        ("valve", "pAUC"),
        ("Total", "AUC-s"),
        ("Total", "AUC-t"),
        ("Total", "pAUC"),
        ("Total", "hmean"),
    ]
    assert out.loc["A", ("fan", "AUC-s")] == pytest.approx(70.0)  # mean over sections, percent
    assert out.loc["A", ("fan", "pAUC")] == pytest.approx(60.0)
    assert out.loc["A", ("Total", "AUC-s")] == pytest.approx(100 * 3 / (1 / 0.6 + 1 / 0.8 + 2))
    assert out.loc["B", ("Total", "AUC-t")] == pytest.approx(50.0)
    assert out.loc["A", ("Total", "hmean")] == pytest.approx(100 * official_score(tidy[tidy.system == "A"]))
    with pytest.raises(ValueError, match="not in the results"):
        dcase_table(tidy, systems=["C"])


def test_evaluate_leaves_out_clips_without_ground_truth():
    import pandas as pd

    from asd_utils.evaluation.metrics import evaluate

    rng = np.random.default_rng(0)
    labelled = pd.DataFrame({
        "machine": ["m"] * 8, "section": ["00"] * 8,
        "domain": ["source", "source", "target", "target"] * 2, "is_anomaly": [0, 0, 0, 0, 1, 1, 1, 1],
    })
    scores = rng.normal(size=8)
    blinded = pd.DataFrame({"machine": ["m"] * 3, "section": ["00"] * 3, "domain": [None] * 3,
                            "is_anomaly": [np.nan] * 3})
    both = pd.concat([blinded, labelled], ignore_index=True)
    expected = evaluate(labelled, scores)
    got = evaluate(both, np.concatenate([[99.0, -99.0, 0.0], scores]))
    pd.testing.assert_frame_equal(got, expected)
    with pytest.raises(ValueError, match="no test clip has ground truth"):
        evaluate(blinded, np.zeros(3))


def test_domain_pair_aucs_by_hand_and_as_a_split_of_the_official_aucs():
    # source normals 1, 2; target normals 5, 6; source anomalies 3, 4; target anomalies 7, 5
    index = pd.DataFrame({
        "machine": "fan", "section": "00",
        "domain": ["source", "source", "target", "target", "source", "source", "target", "target"],
        "is_anomaly": [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
    })
    scores = np.array([1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 5.0])
    pairs = domain_pair_aucs(index, scores).set_index(["normals", "anomalies"])["auc"]
    assert pairs[("source", "source")] == 1.0          # 3, 4 beat 1, 2
    assert pairs[("source", "target")] == 1.0          # 7, 5 beat 1, 2
    assert pairs[("target", "source")] == 0.0          # 3, 4 lose to 5, 6: the scale problem
    assert pairs[("target", "target")] == 2.5 / 4      # 7 beats both; 5 ties 5 (half) and loses to 6
    # the official AUC (target) is the anomaly-count weighted mean of its two pairs (2 and 2 anomalies)
    official = section_metrics(index["is_anomaly"], scores, index["domain"])
    assert official["auc_target"] == pytest.approx((pairs[("target", "source")] + pairs[("target", "target")]) / 2)
    assert official["auc_source"] == pytest.approx((pairs[("source", "source")] + pairs[("source", "target")]) / 2)


def test_domain_pair_aucs_weighting_on_random_sections_and_missing_groups():
    rng = np.random.default_rng(3)
    n = 60
    index = pd.DataFrame({"machine": "valve", "section": "00",
                          "domain": rng.choice(["source", "target"], n, p=[0.7, 0.3]),
                          "is_anomaly": rng.choice([0.0, 1.0], n)})
    scores = rng.integers(0, 8, n).astype(float)  # many ties
    pairs = domain_pair_aucs(index, scores).set_index(["normals", "anomalies"])
    official = evaluate(index, scores).iloc[0]
    for normals in ("source", "target"):
        rows = pairs.loc[normals]
        weighted = (rows["auc"] * rows["n_anomalies"]).sum() / rows["n_anomalies"].sum()
        assert official[f"auc_{normals}"] == pytest.approx(weighted, abs=1e-12)
    # no target anomalies: their pairs are NaN, not an error; unlabelled clips are left out
    index.loc[(index["domain"] == "target") & (index["is_anomaly"] == 1), "is_anomaly"] = np.nan
    pairs = domain_pair_aucs(index, scores).set_index(["normals", "anomalies"])
    assert np.isnan(pairs.loc[("source", "target"), "auc"]) and pairs.loc[("source", "target"), "n_anomalies"] == 0
    assert not np.isnan(pairs.loc[("source", "source"), "auc"])
    with pytest.raises(ValueError, match="must align by position"):
        domain_pair_aucs(index, scores[:-1])
