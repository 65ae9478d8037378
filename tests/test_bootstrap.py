"""Tests of asd_utils.evaluation.bootstrap: weighted ROC areas against scikit-learn, stratified resampling,
intervals of hand-built scorers, paired comparisons, reading per-clip scores from submission files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from asd_utils.evaluation import bootstrap, metrics, results, submission
from asd_utils.evaluation.bootstrap import (
    CELL_ORDER,
    ClipScores,
    align_clip_scores,
    attach_truth,
    bootstrap_official_score,
    counts_to_indices,
    prob_better,
    read_clip_scores,
    real_differences,
    resampled_section_metrics,
    stratified_counts,
    submission_folder_name,
    weighted_roc_area,
)


# -- shared fixtures (also imported by test_results.py and test_explorer.py) ---------------------------
def make_test_index(machines=("fan", "valve"), per_cell: int = 10) -> pd.DataFrame:
    """A labelled DCASE test set: per machine type, ``per_cell`` clips of each domain x label cell,
    with real DCASE file names (so domain and label parse from the names)."""
    rows = []
    for machine in machines:
        number = 0
        for domain, label in CELL_ORDER:
            for _ in range(per_cell):
                name = f"section_00_{domain}_test_{label}_{number:04d}_speed_{number % 3}.wav"
                rows.append({"machine": machine, "section": "00", "file_name": name, "domain": domain,
                             "label": label, "is_anomaly": float(label == "anomaly"),
                             "path": f"/nowhere/{machine}/test/{name}", "attributes": f"speed_{number % 3}",
                             "split": "test"})
                number += 1
    return pd.DataFrame(rows)


def perfect_scores(index: pd.DataFrame) -> np.ndarray:
    """Every anomaly above every normal clip: AUC-s = AUC-t = pAUC = 1."""
    return index["is_anomaly"].to_numpy() + np.linspace(0.0, 0.5, len(index))


def write_system(results_dir, notebook: str, system: str, index: pd.DataFrame, scores, *, note: str = "",
                 decisions: bool = True) -> None:
    """Record a system as a notebook does: tidy results row + DCASE submission files."""
    results.write_results(metrics.evaluate(index, scores), notebook=notebook, system=system, profile="smoke",
                          results_dir=results_dir, note=note)
    folder = results_dir / "submissions" / notebook / submission_folder_name(system)
    train = index[["machine", "section"]].copy()
    submission.write_submissions(folder, index, scores, train, np.asarray(scores) * 0 + np.median(scores))
    if not decisions:
        for path in folder.glob("decision_result_*.csv"):
            path.unlink()


def _aligned(index: pd.DataFrame, **systems) -> ClipScores:
    long = pd.concat([index.assign(notebook="99_t", system=name, score=scores, decision=np.nan)
                      for name, scores in systems.items()], ignore_index=True)
    return align_clip_scores(long, key=("system",))


# -- weighted ROC areas --------------------------------------------------------------------------------
@pytest.mark.parametrize("max_fpr", [None, 0.1, 0.35])
def test_weighted_roc_area_equals_sklearn_on_materialised_resamples(max_fpr):
    rng = np.random.default_rng(3)
    for _ in range(8):
        n = int(rng.integers(6, 40))
        s = np.round(rng.normal(size=n), int(rng.integers(0, 2)))  # many ties
        y = rng.random(n) < 0.4
        y[:2] = [True, False]
        w = rng.integers(0, 3, size=(10, n))
        w[:, :2] += 1
        ours = weighted_roc_area(s, y, w, max_fpr=max_fpr)
        ref = [roc_auc_score(y[i], s[i], max_fpr=max_fpr) for i in counts_to_indices(w)]
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_weighted_roc_area_hand_case_and_errors():
    # normals 0, 1; anomalies 1, 2: pairs (1>0), (1=1 -> 1/2), (2>0), (2>1) -> 3.5 / 4
    s, y = np.array([0.0, 1.0, 1.0, 2.0]), np.array([False, False, True, True])
    assert weighted_roc_area(s, y, np.ones((1, 4)))[0] == pytest.approx(0.875)
    # drawing the tied normal twice and the low normal never: (1=1) x2 -> 1, (2>1) x2 -> 2; 3 / 4
    assert weighted_roc_area(s, y, np.array([[0, 2, 1, 1]]))[0] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="positive weight"):
        weighted_roc_area(s, y, np.array([[1, 1, 0, 0]]))
    with pytest.raises(ValueError, match="disagree"):
        weighted_roc_area(s, y, np.ones((1, 3)))


def test_section_metrics_with_unit_counts_equal_the_evaluator():
    index = make_test_index(("fan",), per_cell=7)
    rng = np.random.default_rng(0)
    s = rng.normal(size=len(index)) + index["is_anomaly"].to_numpy()
    ours = resampled_section_metrics(s, index["is_anomaly"], index["domain"], np.ones((1, len(index)), int))
    ref = metrics.section_metrics(index["is_anomaly"], s, index["domain"])
    np.testing.assert_allclose(ours[0, 0], [ref[m] for m in metrics.METRICS], atol=1e-12)


# -- stratified resampling -----------------------------------------------------------------------------
def test_stratification_keeps_every_cell_size():
    sizes = [5, 3, 0, 8]
    counts = stratified_counts(sizes, 400, np.random.default_rng(1))
    assert counts.shape == (400, 16) and counts.dtype == np.int64
    edges = np.cumsum([0, 5, 3, 8])
    for c in range(3):
        np.testing.assert_array_equal(counts[:, edges[c]:edges[c + 1]].sum(axis=1), [5, 3, 8][c])
    # clips really are drawn with replacement: some drawn twice, some never
    assert (counts > 1).any() and (counts == 0).any()
    # materialised resamples stay inside their cell
    for idx in counts_to_indices(counts[:5]):
        assert len(idx) == 16 and ((idx[:5] < 5).all() and (idx[5:8] >= 5).all() and (idx[5:8] < 8).all())


def test_bootstrap_resamples_keep_cells_per_machine_and_section():
    index = make_test_index(("fan", "valve"), per_cell=6)
    aligned = _aligned(index, A=perfect_scores(index))
    # the domain x label blocks are contiguous in the aligned clips, in CELL_ORDER
    for _, group in aligned.clips.groupby(["machine", "section"]):
        cells = list(zip(group["domain"], group["label"]))
        assert cells == [cell for cell in CELL_ORDER for _ in range(6)]
    with pytest.raises(ValueError):
        stratified_counts([3], 0, np.random.default_rng(0))


# -- intervals -----------------------------------------------------------------------------------------
def test_perfect_scorer_interval_is_one_and_random_scorer_interval_contains_half():
    index = make_test_index(("fan", "valve", "slider"), per_cell=50)
    rng = np.random.default_rng(12345)
    aligned = _aligned(index, perfect=perfect_scores(index), random=rng.random(len(index)))
    result = bootstrap_official_score(aligned, n_resamples=500, seed=0)
    table = result.intervals().set_index("system")
    assert table.loc["perfect", "ci_low"] == 1.0 and table.loc["perfect", "ci_high"] == 1.0
    assert table.loc["perfect", "official_score"] == 1.0
    assert table.loc["random", "ci_low"] < 0.5 < table.loc["random", "ci_high"]
    assert 0.02 < table.loc["random", "ci_width"] < 0.2
    # the point estimate is the evaluator's official score
    evaluated = metrics.official_score(metrics.evaluate(aligned.clips.assign(
        is_anomaly=(aligned.clips["label"] == "anomaly").astype(float)), aligned.scores[:, 1]))
    assert table.loc["random", "official_score"] == pytest.approx(evaluated, abs=1e-12)
    # the perfect scorer beats the random one in every resample
    assert result.prob_better().loc["perfect", "random"] == 1.0
    paired = result.compare("perfect", "random")
    assert paired["p_a_better"] == 1.0 and paired["difference_low"] > 0.3
    assert paired["difference"] == pytest.approx(1.0 - table.loc["random", "official_score"])


def test_intervals_are_reproducible_from_the_seed():
    index = make_test_index(("fan", "valve"), per_cell=10)
    rng = np.random.default_rng(0)
    a, b = rng.random(len(index)), rng.random(len(index))
    aligned = _aligned(index, A=a, B=b)
    one = bootstrap_official_score(aligned, n_resamples=100, seed=7)
    two = bootstrap_official_score(aligned, n_resamples=100, seed=7)
    other = bootstrap_official_score(aligned, n_resamples=100, seed=8)
    np.testing.assert_array_equal(one.resamples, two.resamples)
    pd.testing.assert_frame_equal(one.intervals(), two.intervals())
    assert not np.array_equal(one.resamples, other.resamples)
    # a system's resamples do not depend on which other systems are bootstrapped with it (paired,
    # per-section seeding): A alone gives the same distribution
    alone = bootstrap_official_score(_aligned(index, A=a), n_resamples=100, seed=7)
    np.testing.assert_array_equal(alone.resamples[:, 0], one.resamples[:, 0])
    # ... nor on other machine types: fan's section metrics are the same with valve dropped
    is_fan = (index["machine"] == "fan").to_numpy()
    fan = bootstrap_official_score(_aligned(index[is_fan], A=a[is_fan]), n_resamples=100, seed=7)
    np.testing.assert_array_equal(fan.section_metrics[0][:, 0], one.section_metrics[0][:, 0])


def test_system_compared_with_itself_shows_no_preference():
    index = make_test_index(("fan",), per_cell=8)
    s = np.random.default_rng(2).random(len(index))
    result = bootstrap_official_score(_aligned(index, A=s, A_copy=s.copy()), n_resamples=200, seed=0)
    table = result.prob_better()
    assert table.loc["A", "A_copy"] == 0.5  # every resample a tie: ties count half
    assert result.compare("A", "A_copy") == {"p_a_better": 0.5, "difference": 0.0, "difference_low": 0.0,
                                             "difference_high": 0.0}
    with pytest.raises(ValueError, match="not among"):
        result.compare("A", "B")
    np.testing.assert_array_equal(np.diag(table.to_numpy()), 0.5)
    r = np.random.default_rng(0).random((50, 3))
    p = prob_better(r, ["x", "y", "z"]).to_numpy()
    np.testing.assert_allclose(p + p.T, 1.0)  # P(A > B) + P(B > A) = 1 with ties halved
    assert real_differences(prob_better(np.c_[np.ones(10), np.zeros(10)], ["a", "b"])).values.tolist() == [
        ["a", "b", 1.0]]


def test_machine_intervals_and_confidence_checks():
    index = make_test_index(("fan", "valve"), per_cell=10)
    result = bootstrap_official_score(_aligned(index, A=perfect_scores(index)), n_resamples=50, seed=0)
    per = result.machine_intervals()
    assert per["machine"].tolist() == ["fan", "valve"] and (per["hmean"] == 1.0).all()
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_official_score(_aligned(index, A=perfect_scores(index)), confidence=1.0)


# -- per-clip scores from submission files -------------------------------------------------------------
def test_read_clip_scores_maps_folders_to_system_names_and_reads_decisions(tmp_path):
    index = make_test_index(("fan", "ToyCar"), per_cell=4)
    s = perfect_scores(index)
    write_system(tmp_path, "02_x", "System-1 w/o weighting", index, s)
    write_system(tmp_path, "02_x", "Plain", index, s, decisions=False)
    tidy = results.collect_results(tmp_path)
    clips = read_clip_scores(tmp_path, tidy)
    assert set(clips["system"]) == {"System-1 w/o weighting", "Plain"}
    assert clips["system"].iloc[0] == "System-1 w/o weighting"  # the results' order
    assert set(clips["machine"]) == {"fan", "ToyCar"} and set(clips["section"]) == {"00"}
    named = clips[clips["system"] == "System-1 w/o weighting"]
    assert named["decision"].isin([0.0, 1.0]).all() and clips[clips["system"] == "Plain"]["decision"].isna().all()
    assert (named["is_anomaly"] == (named["label"] == "anomaly")).all()
    # without the tidy table, the folder name is the name
    assert "System-1_w_o_weighting" in set(read_clip_scores(tmp_path)["system"])
    assert read_clip_scores(tmp_path / "nothing").empty
    # the whole chain reproduces the CSV's official score
    result = bootstrap.bootstrap_results_dir(tmp_path, tidy, n_resamples=20)
    assert result.point.tolist() == [1.0, 1.0]


def test_bad_submission_name_is_a_clear_error(tmp_path):
    folder = tmp_path / "submissions" / "01_a" / "S"
    folder.mkdir(parents=True)
    (folder / "anomaly_score_fan_test.csv").write_text("a.wav,1\n")
    with pytest.raises(ValueError, match="anomaly_score_<machine>_section_<ss>_test.csv"):
        read_clip_scores(tmp_path)


def test_blinded_clips_get_truth_from_the_index_and_mismatched_systems_are_left_out():
    index = make_test_index(("fan",), per_cell=4)
    blinded = index.copy()
    blinded.loc[:3, "file_name"] = [f"section_00_{i:04d}.wav" for i in range(4)]
    long = blinded.assign(notebook="01_a", system="A", score=perfect_scores(index), decision=np.nan)
    long.loc[:3, ["domain", "label", "is_anomaly"]] = [None, None, np.nan]
    assert len(align_clip_scores(long).clips) == 12  # unlabelled blinded clips are left out
    filled = attach_truth(long, blinded)
    assert filled.loc[:3, "label"].tolist() == ["normal"] * 4 and len(align_clip_scores(filled).clips) == 16
    partial = pd.concat([filled, filled.iloc[:-1].assign(system="B")], ignore_index=True)
    aligned = align_clip_scores(partial)
    assert aligned.systems == [("01_a", "A")] and "15 labelled clips" in aligned.excluded[("01_a", "B")]


def _result_with_resamples(resamples: np.ndarray, confidence: float = 0.95) -> bootstrap.BootstrapResult:
    resamples = np.asarray(resamples, dtype=np.float64)
    return bootstrap.BootstrapResult(systems=[f"s{j}" for j in range(resamples.shape[1])],
                                     point=resamples.mean(axis=0), resamples=resamples, sections=[],
                                     section_metrics=[], section_point=[], confidence=confidence,
                                     n_resamples=len(resamples), seed=0)


def test_interval_bounds_are_the_two_sided_percentiles_of_the_resamples():
    """A 95 % interval leaves 2.5 % of the distribution on each side. On 200001 evenly spaced
    resamples of [0, 1] the bounds are exactly 0.025 and 0.975 (a 90 % interval: 0.05, 0.95);
    on 400000 draws of a standard normal they are -1.96 and +1.96 (90 %: -1.645, +1.645)."""
    grid = np.linspace(0.0, 1.0, 200001)[:, None]
    table = _result_with_resamples(grid).intervals()
    assert table.loc[0, "ci_low"] == pytest.approx(0.025, abs=1e-9)
    assert table.loc[0, "ci_high"] == pytest.approx(0.975, abs=1e-9)
    assert table.loc[0, "ci_width"] == pytest.approx(0.95, abs=1e-9)
    ninety = _result_with_resamples(grid, confidence=0.9).intervals()
    assert (ninety.loc[0, "ci_low"], ninety.loc[0, "ci_high"]) == pytest.approx((0.05, 0.95), abs=1e-9)
    normal = np.random.default_rng(0).standard_normal((400000, 2))
    normal[:, 1] = 3.0 + 2.0 * normal[:, 1]
    table = _result_with_resamples(normal).intervals()
    assert table["ci_low"].tolist() == pytest.approx([-1.95996, 3.0 - 2 * 1.95996], abs=0.02)
    assert table["ci_high"].tolist() == pytest.approx([1.95996, 3.0 + 2 * 1.95996], abs=0.02)
    # the paired difference s1 - s0 ~ N(3, 5): its interval is 3 -/+ 1.96 sqrt(5)
    paired = _result_with_resamples(normal).compare("s1", "s0")
    assert (paired["difference_low"], paired["difference_high"]) == pytest.approx(
        (3.0 - 1.95996 * np.sqrt(5.0), 3.0 + 1.95996 * np.sqrt(5.0)), abs=0.03)


def test_official_score_interval_covers_95_percent_of_its_resamples():
    """On a real bootstrap (two machine types, 40 clips per cell) the interval holds 95 % of the
    resampled official scores: 2.5 % fall below ci_low and 2.5 % above ci_high."""
    index = make_test_index(("fan", "valve"), per_cell=40)
    rng = np.random.default_rng(4)
    scores = index["is_anomaly"].to_numpy() * 0.6 + rng.random(len(index))
    result = bootstrap_official_score(_aligned(index, A=scores), n_resamples=4000, seed=1)
    row = result.intervals().iloc[0]
    r = result.resamples[:, 0]
    assert np.mean(r < row["ci_low"]) == pytest.approx(0.025, abs=0.004)
    assert np.mean(r > row["ci_high"]) == pytest.approx(0.025, abs=0.004)
    per = result.machine_intervals()
    for j, (low, high) in enumerate(zip(per["ci_low"], per["ci_high"])):
        hm = bootstrap._hmean(result.section_metrics[j][:, 0], axis=1)
        assert np.mean((hm >= low) & (hm <= high)) == pytest.approx(0.95, abs=0.01)
