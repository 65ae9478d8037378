"""Tests of asd_utils.results: tidy CSVs, replacement on rerun, collection, summary, Markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asd_utils.metrics import dcase_table
from asd_utils.results import (
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
