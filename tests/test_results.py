"""Tests of asd_utils.evaluation.results: tidy CSVs, replacement on rerun, collection, summary, Markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asd_utils.evaluation.metrics import dcase_table
from asd_utils.evaluation.results import (
    COLUMNS,
    collect_results,
    read_results,
    summary_table,
    to_markdown,
    write_results,
)


def _table(a=0.8, b=0.6):
    return pd.DataFrame(
        {
            "machine": ["fan", "valve"],
            "section": ["00", "00"],
            "auc_source": [a, 1.0],
            "auc_target": [b, 0.5],
            "pauc": [0.5, 0.5],
        }
    )


def test_write_results_tidy_and_replaces_system(tmp_path):
    path = write_results(_table(), notebook="02_x", system="S1", profile="smoke", results_dir=tmp_path)
    assert path == tmp_path / "02_x.csv"
    frame = read_results(path)
    assert list(frame.columns) == COLUMNS
    assert frame["section"].tolist() == ["00", "00"]  # kept as strings
    assert frame["hmean"].iloc[0] == pytest.approx(3 / (1 / 0.8 + 1 / 0.6 + 2))
    write_results(
        _table(), notebook="02_x", system="S2", profile="smoke", results_dir=tmp_path, note="untrained"
    )
    write_results(_table(a=0.9), notebook="02_x", system="S1", profile="smoke", results_dir=tmp_path)
    frame = read_results(path)
    assert len(frame) == 4  # rerun replaced S1, kept S2
    assert frame[frame.system == "S1"]["auc_source"].tolist() == [0.9, 1.0]
    assert frame[frame.system == "S2"]["note"].tolist() == ["untrained", "untrained"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temporary left behind


def test_write_results_default_folder_uses_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("ASD_HOME", str(tmp_path))
    path = write_results(_table(), notebook="01_b", system="AE", profile="smoke")
    assert path == tmp_path / "results" / "smoke" / "01_b.csv"
    with pytest.raises(ValueError, match="unknown profile"):
        write_results(_table(), notebook="01_b", system="AE", profile="nope")
    with pytest.raises(ValueError, match="lacks columns"):
        write_results(_table().drop(columns="pauc"), notebook="01_b", system="AE", profile="smoke")


def test_collect_and_summary(tmp_path):
    write_results(_table(), notebook="01_a", system="AE", profile="smoke", results_dir=tmp_path)
    write_results(_table(0.7, 0.7), notebook="02_b", system="S1", profile="smoke", results_dir=tmp_path)
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")  # ignored: not a tidy CSV
    tidy = collect_results(tmp_path)
    assert len(tidy) == 4 and tidy["notebook"].tolist() == ["01_a", "01_a", "02_b", "02_b"]
    summary = summary_table(tidy)
    assert summary[["notebook", "system"]].values.tolist() == [["01_a", "AE"], ["02_b", "S1"]]
    assert summary.loc[0, "auc_source"] == pytest.approx(2 / (1 / 0.8 + 1))
    assert summary.loc[0, "official_score"] == pytest.approx(6 / (1 / 0.8 + 1 + 1 / 0.6 + 2 + 2 + 2))
    (tmp_path / "empty").mkdir()
    assert collect_results(tmp_path / "empty").empty
    with pytest.raises(FileNotFoundError):
        collect_results(tmp_path / "missing")
    # The paper layout accepts the collected tidy frame.
    table = dcase_table(tidy)
    assert table.loc["AE", ("fan", "AUC-s")] == pytest.approx(80.0)


def test_to_markdown_plain_and_multiindex():
    df = pd.DataFrame({"system": ["A", "B|C"], "auc": [0.5, np.nan], "n": [1, 20]})
    md = to_markdown(df, floatfmt=".2f")
    lines = md.strip().split("\n")
    assert lines[0] == "| system |  auc |   n |"
    assert lines[1] == "| ------ | ---: | --: |"
    assert lines[2] == "| A      | 0.50 |   1 |"
    assert lines[3] == "| B\\|C   |      |  20 |"
    cols = pd.MultiIndex.from_tuples([("fan", "AUC-s"), ("Total", "hmean")])
    multi = pd.DataFrame([[61.234, 55.0]], index=pd.Index(["S1"], name="system"), columns=cols)
    md = to_markdown(multi, floatfmt=".1f")
    assert md.split("\n")[0] == "| system | fan / AUC-s | Total / hmean |"
    assert "| S1     |        61.2 |          55.0 |" in md


# -- the comparison (notebook 08) and the runner's summary -----------------------------------------------
def test_summary_gains_bootstrap_interval_columns(tmp_path):
    from test_bootstrap import make_test_index, perfect_scores, write_system

    from asd_utils.evaluation.results import bootstrap_intervals

    index = make_test_index(("fan", "valve"), per_cell=10)
    rng = np.random.default_rng(0)
    write_system(tmp_path, "01_a", "Perfect", index, perfect_scores(index))
    write_system(tmp_path, "01_a", "Random", index, rng.random(len(index)))
    write_results(_table(), notebook="02_b", system="No files", profile="smoke", results_dir=tmp_path)
    tidy = collect_results(tmp_path)
    intervals = bootstrap_intervals(tmp_path, tidy, n_resamples=100, seed=0)
    assert intervals[["notebook", "system"]].values.tolist() == [["01_a", "Perfect"], ["01_a", "Random"]]
    summary = summary_table(tidy, intervals)
    assert list(summary.columns[5:8]) == ["official_score", "ci_low", "ci_high"]
    perfect, random_, no_files = summary.to_dict("records")
    assert perfect["ci_low"] == perfect["ci_high"] == perfect["official_score"] == 1.0
    assert random_["ci_low"] < random_["official_score"] < random_["ci_high"]
    assert np.isnan(no_files["ci_low"]) and np.isnan(no_files["ci_high"])  # no per-clip files, no interval
    assert "| ci_low | ci_high |" in to_markdown(summary).splitlines()[0].replace("  ", " ")
    pd.testing.assert_frame_equal(intervals, bootstrap_intervals(tmp_path, tidy, n_resamples=100, seed=0))
    # submission files that no longer match the CSV (another run's clips) give no interval
    first = sorted((tmp_path / "submissions" / "01_a" / "Random").glob("anomaly_score_fan*"))[0]
    lines = first.read_text().splitlines()
    first.write_text("\n".join(lines[:-1]) + "\n")
    assert bootstrap_intervals(tmp_path, tidy, n_resamples=20)["system"].tolist() == ["Perfect"]
    assert summary_table(tidy).columns.tolist() == [
        "notebook", "system", "auc_source", "auc_target", "pauc", "official_score", "n_rows", "note"]


def test_runner_summary_has_the_interval_columns(tmp_path):
    from test_bootstrap import make_test_index, perfect_scores, write_system

    from asd_utils.run.runner import collect_summary

    index = make_test_index(("fan",), per_cell=5)
    write_system(tmp_path, "01_a", "Perfect", index, perfect_scores(index), note="synthetic data")
    path = collect_summary(tmp_path)
    summary = pd.read_csv(path)
    assert summary.loc[0, "ci_low"] == summary.loc[0, "ci_high"] == 1.0
    assert "ci_low" in (tmp_path / "summary.md").read_text()


def test_comparison_table_picks_up_a_new_notebook_without_code_changes(tmp_path):
    """A notebook the package has never heard of writes its CSV and submission files: it appears in
    the leaderboard, the heat-map table, the bootstrap and the catalogue (as not catalogued)."""
    from test_bootstrap import make_test_index, perfect_scores, write_system

    from asd_utils.evaluation import bootstrap
    from asd_utils.evaluation.results import bootstrap_intervals, caveat_marks, leaderboard, per_machine_hmean
    from asd_utils.notebook import catalogue

    index = make_test_index(("fan", "valve"), per_cell=6)
    write_system(tmp_path, "01_baseline_autoencoder", "AE-MSE", index, np.random.default_rng(1).random(len(index)),
                 note="synthetic data; profile smoke")
    write_system(tmp_path, "42_brand_new_method", "Shiny v2", index, perfect_scores(index),
                 note="synthetic data; untrained stand-in backbone; profile smoke")
    tidy = collect_results(tmp_path)
    board = leaderboard(tidy, bootstrap_intervals(tmp_path, tidy, n_resamples=50))
    assert board[["rank", "notebook", "system"]].values.tolist() == [
        [1, "42_brand_new_method", "Shiny v2"], [2, "01_baseline_autoencoder", "AE-MSE"]]
    assert board["caveat"].tolist() == ["*†", "*"] and board.loc[0, "ci_low"] == 1.0
    heat = per_machine_hmean(tidy)
    assert heat.loc[("42_brand_new_method", "Shiny v2")].tolist() == [1.0, 1.0]
    assert list(heat.columns) == ["fan", "valve"]
    boot = bootstrap.bootstrap_results_dir(tmp_path, tidy, n_resamples=10)
    assert ("42_brand_new_method", "Shiny v2") in boot.systems
    made_of = catalogue.catalogue_table(tidy).set_index("system")
    assert made_of.loc["Shiny v2", "backbone"] == catalogue.NOT_CATALOGUED
    assert made_of.loc["AE-MSE", "backbone"].startswith("fully connected autoencoder")
    assert caveat_marks("data: dcase2025") == ""
    from asd_utils.evaluation.results import caveat_legend

    assert caveat_marks("synthetic data; stand-in pretrained by the compendium on synthetic audio") == "*‡"
    assert caveat_legend(["synthetic data", "data: x"]) == "* synthetic data"
    assert caveat_legend(tidy["note"]) == "* synthetic data, † untrained stand-in backbone"
    assert caveat_legend(["data: dcase"]) == ""


def test_leaderboard_ranks_ties_and_missing_notebooks(tmp_path):
    from asd_utils.evaluation.results import leaderboard, missing_notebooks

    write_results(_table(), notebook="01_a", system="A", profile="smoke", results_dir=tmp_path)
    write_results(_table(), notebook="01_a", system="B", profile="smoke", results_dir=tmp_path)
    write_results(_table(0.9, 0.9), notebook="02_b", system="C", profile="smoke", results_dir=tmp_path)
    board = leaderboard(collect_results(tmp_path))
    assert board["rank"].tolist() == [1, 2, 2] and board["system"].tolist() == ["C", "A", "B"]
    folder = tmp_path / "notebooks"
    folder.mkdir()
    code = '{"cells": [{"cell_type": "code", "source": ["%s"]}]}'
    (folder / "00_tour.ipynb").write_text(code % "print(1)")
    (folder / "01_a.ipynb").write_text(code % "ctx.record(name, table)")
    (folder / "03_c.ipynb").write_text(code % "ctx.record(name, table)")
    (folder / "07_cmp.ipynb").write_text(code % "results.write_results(x)")
    tidy = collect_results(tmp_path)
    assert missing_notebooks(tidy, folder) == ["03_c", "07_cmp"]
    assert missing_notebooks(tidy, folder, exclude=("07_cmp",)) == ["03_c"]
    assert missing_notebooks(tidy.iloc[:0], folder, exclude=("07_cmp",)) == ["01_a", "03_c"]


@pytest.mark.notebook
def test_comparison_notebook_runs_after_the_others(tmp_path):
    """Notebook 08 in the smoke profile on results recorded as the other notebooks record them (a
    known notebook and one it has never heard of): every section runs and writes its tables and
    figures; the explorer shows the synthetic data's hidden truth."""
    from test_bootstrap import write_system

    from asd_utils.data import discover
    from asd_utils.run import execute, runner
    from asd_utils.synth import ensure_dataset

    index = discover(ensure_dataset("smoke"))
    test = index[index["split"] == "test"].reset_index(drop=True)
    rng = np.random.default_rng(0)
    results_dir = tmp_path / "results"
    write_system(results_dir, "01_baseline_autoencoder", "AE-MSE", test,
                 rng.random(len(test)) + test["is_anomaly"].to_numpy(), note="synthetic data; profile smoke")
    write_system(results_dir, "42_brand_new", "Shiny", test, rng.random(len(test)),
                 note="synthetic data; untrained stand-in backbone; profile smoke")
    notebook = runner.select_notebooks(runner.available_notebooks(), ["08"])[0]
    execute.execute_notebook(notebook, tmp_path / "08.ipynb",
                             {"PROFILE": "smoke", "DATA_ROOT": None, "OUTPUT_DIR": str(tmp_path)})
    tables = results_dir / "comparison"
    board = pd.read_csv(tables / "leaderboard.csv")
    assert sorted(board["system"]) == ["AE-MSE", "Shiny"] and board[["ci_low", "ci_high"]].notna().all().all()
    assert board.set_index("system").loc["Shiny", "caveat"] == "*†"
    long = pd.read_csv(tables / "reported_vs_reproduced.csv", dtype={"report": str})
    assert {"000", "004"} <= set(long["report"]) and set(long["system"]) == {"AE-MSE"}
    errors = pd.read_csv(tables / "clip_errors.csv")
    assert len(errors) == int(test["is_anomaly"].notna().sum()) and "anomaly_kind" in errors.columns
    figures = {p.stem for p in (tmp_path / "figures" / "08_comparison").glob("*.png")}
    assert {"hmean_per_machine", "bootstrap_intervals", "which_differences_are_real",
            "reported_vs_reproduced_000", "domain_pair_aucs"} <= figures
    assert any(f.startswith("clip_ranks_") for f in figures)
    # the domain-pair split: 4 pairs per system and machine type, and its target pairs, weighted by
    # their anomaly counts, give back the AUC (target) the baseline recorded
    pairs = pd.read_csv(tables / "domain_pair_aucs.csv", dtype={"section": str})
    n_sections = test.groupby(["machine", "section"]).ngroups
    assert len(pairs) == 2 * 4 * n_sections and set(pairs["system"]) == {"AE-MSE", "Shiny"}
    recorded = pd.read_csv(results_dir / "01_baseline_autoencoder.csv", dtype={"section": str})
    for machine, rows in pairs[(pairs["system"] == "AE-MSE") & (pairs["normals"] == "target")].groupby("machine"):
        weighted = (rows["auc"] * rows["n_anomalies"]).sum() / rows["n_anomalies"].sum()
        assert weighted == pytest.approx(recorded.set_index("machine").loc[machine, "auc_target"], abs=1e-9)
