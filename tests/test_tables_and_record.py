"""The notebooks' shared tables (asd_utils.evaluation.tables) and ``RunContext.record``, which evaluates
a system's scores and writes its rows in one call."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asd_utils.evaluation import metrics, reported
from asd_utils.evaluation.results import read_results, write_results
from asd_utils.evaluation.tables import AE_NOTEBOOK, baseline_rows, reported_pivot, tidy_table
from asd_utils.methods.pipeline import SectionScores
from asd_utils.notebook import context


def _table(machine: str, auc: float) -> pd.DataFrame:
    return pd.DataFrame({"machine": [machine], "section": ["00"], "auc_source": [auc], "auc_target": [auc],
                         "pauc": [auc], "hmean": [auc]})


def _test_index() -> pd.DataFrame:
    """One machine type, one section: 2 source + 2 target normals, 2 source + 2 target anomalies."""
    return pd.DataFrame({"machine": ["m"] * 8, "section": ["00"] * 8,
                         "domain": ["source", "source", "target", "target"] * 2,
                         "is_anomaly": [0, 0, 0, 0, 1, 1, 1, 1],
                         "label": ["normal"] * 4 + ["anomaly"] * 4})


def _ctx(tmp_path) -> context.RunContext:
    return context.RunContext(
        notebook="99_test", profile="smoke", config={}, data_root=tmp_path, synthetic=True, device=None, seed=0,
        results_dir=tmp_path / "results", figures_dir=tmp_path / "figures", cache_dir=tmp_path / "cache",
        index=pd.DataFrame({"machine": ["m"], "split": ["test"]}),
    )


# -- tables ----------------------------------------------------------------------------------------
def test_tidy_table_stacks_in_the_chosen_order():
    tables = {"A": _table("m", 0.6), "B": _table("m", 0.7)}
    tidy = tidy_table(tables)
    assert tidy["system"].tolist() == ["A", "B"] and tidy["auc_source"].tolist() == [0.6, 0.7]
    assert tidy.index.tolist() == [0, 1]
    assert tidy_table(tables, ["B", "A"])["system"].tolist() == ["B", "A"]
    assert tidy_table(tables, ["B"])["system"].tolist() == ["B"]
    with pytest.raises(KeyError, match="C"):
        tidy_table(tables, ["C"])
    assert tidy_table({}).empty and "system" in tidy_table({}).columns


def test_baseline_rows_read_notebook_01_or_give_an_empty_frame(tmp_path):
    assert baseline_rows(tmp_path).empty
    for system, auc in (("AE-MSE", 0.6), ("AE-MAHALA", 0.7), ("other", 0.8)):
        write_results(_table("m", auc), notebook=AE_NOTEBOOK, system=system, profile="smoke", results_dir=tmp_path)
    rows = baseline_rows(tmp_path)
    assert rows["system"].tolist() == ["AE-MSE", "AE-MAHALA"]
    assert rows["auc_target"].tolist() == [0.6, 0.7]
    assert baseline_rows(tmp_path, ["AE-MAHALA"])["system"].tolist() == ["AE-MAHALA"]
    assert baseline_rows(tmp_path, ["none"]).empty


def test_reported_pivot_puts_reproduced_and_reported_side_by_side():
    tidy = tidy_table({"ours": pd.concat([_table("fan", 0.6), _table("bearing", 0.8)], ignore_index=True)})
    quoted = pd.DataFrame({"system": ["theirs"] * 2, "machine": ["fan", "bearing"], "metric": ["auc_source"] * 2,
                           "value": [70.0, 90.0]})
    side = reported.side_by_side(tidy, quoted, {"ours": "theirs"})
    shown = reported_pivot(side)
    assert shown.loc[("fan", "auc_source"), ("reproduced", "ours")] == pytest.approx(60.0)
    assert shown.loc[("fan", "auc_source"), ("reported", "ours")] == pytest.approx(70.0)
    assert shown.loc[("bearing", "auc_source"), ("reported", "ours")] == pytest.approx(90.0)
    assert list(dict.fromkeys(shown.index.get_level_values("machine"))) == list(dict.fromkeys(side["machine"]))
    machines = reported_pivot(side, sort=True).index.get_level_values("machine")
    assert list(machines) == sorted(machines)
    by_theirs = reported_pivot(side, columns="reported_system")
    assert ("reported", "theirs") in by_theirs.columns


# -- ctx.record --------------------------------------------------------------------------------------
def test_record_evaluates_scores_and_writes_the_rows(tmp_path):
    ctx = _ctx(tmp_path)
    test_index = _test_index()
    # source: normals 0.1, 0.2 vs all anomalies 0.3, 0.4, 0.15, 0.5 -> 7 of 8 pairs ordered: AUC-s 0.875
    scores = SectionScores(test=np.array([0.1, 0.2, 0.6, 0.7, 0.3, 0.4, 0.15, 0.5]), train=np.zeros(3))
    table = ctx.record("S", scores, test_index=test_index)
    assert table["auc_source"].iloc[0] == pytest.approx(7 / 8)
    # target: normals 0.6, 0.7 vs anomalies 0.3, 0.4, 0.15, 0.5 -> no pair ordered
    assert table["auc_target"].iloc[0] == pytest.approx(0.0)
    pd.testing.assert_frame_equal(table, metrics.evaluate(test_index, scores.test))
    written = read_results(tmp_path / "results" / "99_test.csv")
    assert written["system"].tolist() == ["S"]
    assert written["auc_source"].iloc[0] == pytest.approx(7 / 8)
    assert written["note"].iloc[0] == "synthetic data; profile smoke"
    assert ctx.system_scores["S"] is scores and ctx.provenances("S") == []


def test_record_takes_arrays_tables_notes_and_backbones(tmp_path):
    ctx = _ctx(tmp_path)
    test_index = _test_index()
    perfect = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    assert ctx.record("A", perfect, test_index=test_index)["hmean"].iloc[0] == pytest.approx(1.0)
    ctx.record("T", _table("m", 0.5), note="extra words", untrained_backbone=True)
    assert list(ctx.tables) == ["A", "T"] and "T" not in ctx.system_scores
    written = read_results(tmp_path / "results" / "99_test.csv").set_index("system")
    assert written.loc["T", "note"] == "synthetic data; untrained stand-in backbone; profile smoke; extra words"
    assert ctx.provenances("T") == ["untrained stand-in"]
    with pytest.raises(TypeError, match="test_index"):
        ctx.record("B", perfect)
    ctx.record("A", 1 - perfect, test_index=test_index)  # a rerun replaces the rows and moves to the end
    assert list(ctx.tables) == ["T", "A"]
    assert ctx.tidy()["system"].tolist() == ["T", "A"]
    assert ctx.tidy(["A"])["hmean"].iloc[0] < 0.01
    written = read_results(tmp_path / "results" / "99_test.csv")
    assert written["system"].tolist() == ["T", "A"]


def test_baseline_rows_of_the_context_read_its_results_folder(tmp_path):
    ctx = _ctx(tmp_path)
    assert ctx.baseline_rows().empty
    write_results(_table("m", 0.6), notebook=AE_NOTEBOOK, system="AE-MSE", profile="smoke",
                  results_dir=ctx.results_dir)
    assert ctx.baseline_rows(["AE-MSE"])["auc_source"].tolist() == [0.6]
