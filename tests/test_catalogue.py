"""Tests of asd_utils.notebook.catalogue and the cross-report comparison it drives (asd_utils.evaluation.reported)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pandas.testing import assert_frame_equal

from asd_utils.evaluation import reported
from asd_utils.notebook import catalogue
from asd_utils.notebook.catalogue import (
    CATALOGUE,
    NOT_CATALOGUED,
    SystemCard,
    catalogue_table,
    lookup,
    reported_mapping,
)

# The fixed system names of notebooks 03, 04 and 05 (the comparison notebook catalogues them).
FIXED_NAMES = {
    "03": ["EAT-LoRA", "EAT-LoRA-MA", "EAT-FFT", "EAT-FFT-MA", "MA", "EAT-LoRA sep-lib", "EAT-FFT sep-lib"],
    "04": ["Full", "No pseudo-labels", "No StatEx/FeatEx", "No high-pass", "No supplemental mixing"],
    "05": ["BEATs-FFT", "EAT-FFT", "EAT-BEATs", "EAT-BEATs-FFT", "EAT-BEATs-FFT no-SMOTE"],
}


def test_every_system_of_every_notebook_is_catalogued_once():
    keys = [(c.notebook, c.system) for c in CATALOGUE]
    assert len(keys) == len(set(keys))
    for notebook, names in FIXED_NAMES.items():
        for name in names:
            assert lookup(notebook, name) is not None, (notebook, name)
    for notebook in ("01", "02", "06"):
        assert all(c.status == "landed" for c in CATALOGUE if c.notebook == notebook)
    # the same name in two notebooks stays two systems
    assert lookup("03", "EAT-FFT").adaptation == "full fine-tuning" and lookup("05", "EAT-FFT").report == "003"
    for card in CATALOGUE:
        assert card.adaptation in catalogue.ADAPTATIONS
        assert all(getattr(card, c) for c in catalogue.DESCRIPTION_COLUMNS), card


def test_lookup_by_stem_and_unknown_systems_are_marked_not_catalogued():
    assert lookup("02_gisp_heu_beats_statistical_weighting", "System-4").ensemble.startswith("weighted sum")
    assert lookup("02", "System-4").adaptation == "ensemble"
    assert lookup("02", "no such system") is None
    table = catalogue_table([("01_baseline_autoencoder", "AE-MSE"), ("09_brand_new", "Shiny")])
    assert table["notebook"].tolist() == ["01_baseline_autoencoder", "09_brand_new"]
    assert table.loc[0, "adaptation"] == "trained from scratch"
    assert table.loc[0, "reported_as"] == "000: AE-MSE; 001: AE-MSE; 002: Baseline; 004: AE-MSE"
    unknown = table.iloc[1]
    assert all(unknown[c] == NOT_CATALOGUED for c in (*catalogue.DESCRIPTION_COLUMNS, "report", "status"))
    frame = pd.DataFrame({"notebook": ["06_x", "06_x", "06_x"], "system": ["HuBERT", "HuBERT", "New"]})
    assert catalogue_table(frame)["system"].tolist() == ["HuBERT", "New"]  # one row per system
    assert len(catalogue_table()) == len(CATALOGUE)
    with pytest.raises(ValueError, match="adaptation"):
        SystemCard(notebook="09", system="x", report="x", features="f", backbone="b", adaptation="partly",
                   objective="o", data="d", back_end="k")


def test_reported_names_exist_in_the_reports_tables():
    """Every (report, name) of the catalogue names a system of that report's CSV, once the CSV exists."""
    tables = reported.load_all_reported()
    for _, row in reported_mapping().iterrows():
        printed = set(tables.loc[tables["report"] == row["report"], "system"])
        if printed:  # the report's table has landed
            assert row["reported_system"] in printed, (row["notebook"], row["system"], row["report"])


def _tidy(notebook, systems, machines=("fan", "valve"), value=0.8):
    rows = [{"notebook": notebook, "system": s, "machine": m, "section": "00", "auc_source": value,
             "auc_target": value, "pauc": value, "hmean": value, "note": ""} for s in systems for m in machines]
    return pd.DataFrame(rows)


def test_long_comparison_matches_per_notebook_and_report():
    quoted = pd.DataFrame({
        "report": ["000"] * 4 + ["003"] * 2,
        "table": ["Table 1"] * 4 + ["Table 2"] * 2,
        "system": ["AE-MSE", "AE-MSE", "Ensemble System", "Ensemble System", "EAT-FFT", "EAT-FFT"],
        "machine": ["fan", "All", "fan", "All", "fan", "hmean"],
        "metric": ["auc_source", "auc_source", "auc_source", "auc_source", "auc_source", "hmean"],
        "value": [70.0, 66.0, 75.0, 71.0, 60.0, 61.0],
    })
    # EAT-FFT exists in 03 and 05: only 05's maps to report 003
    tidy = pd.concat([_tidy("01_baseline_autoencoder", ["AE-MSE"]), _tidy("02_gisp", ["System-4"], value=0.5),
                      _tidy("03_myps", ["EAT-FFT"], value=0.1), _tidy("05_xju", ["EAT-FFT"], value=0.9)])
    long = reported.long_comparison(tidy, reported_mapping(tidy), quoted)
    assert list(long.columns) == ["report", "table", "notebook", "system", "reported_system", "machine", "metric",
                                  "reported", "reproduced"]
    fan = long[(long["machine"] == "fan") & (long["metric"] == "auc_source")].set_index("reported_system")
    assert fan.loc["AE-MSE", "reported"] == 70.0 and fan.loc["AE-MSE", "reproduced"] == pytest.approx(80.0)
    assert fan.loc["Ensemble System", "reproduced"] == pytest.approx(50.0)
    assert fan.loc["EAT-FFT", "notebook"] == "05_xju" and fan.loc["EAT-FFT", "reproduced"] == pytest.approx(90.0)
    total = long[(long["machine"] == "Total") & (long["metric"] == "hmean") & (long["report"] == "003")]
    assert total["reported"].tolist() == [61.0]
    assert reported.long_comparison(tidy.iloc[:0], reported_mapping(tidy), quoted).empty
    # what nobody reproduces is listed
    unmapped = reported.unmapped_reported(quoted.assign(system=quoted["system"].replace("EAT-FFT", "System 9")),
                                          reported_mapping())
    assert unmapped["system"].tolist() == ["System 9"]


def test_load_all_reported_reads_only_the_reports_own_tables(tmp_path):
    (tmp_path / "000_a_table1.csv").write_text("table,system,machine,metric,value\nTable 1,S,fan,pauc,55.5\n")
    (tmp_path / "baseline_ae_reported.csv").write_text("table,system,machine,metric,value\nx,S,fan,pauc,1\n")
    frame = reported.load_all_reported(tmp_path)
    assert frame.to_dict("records") == [{"report": "000", "table": "Table 1", "system": "S", "machine": "fan",
                                         "metric": "pauc", "value": 55.5}]
    assert reported.report_id("004_ioa_cas_table2.csv") == "004" and reported.report_id("baseline.csv") is None
    assert reported.load_all_reported(tmp_path / "empty_missing").empty
    assert np.isfinite(reported.load_all_reported()["value"]).all()


FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_the_yaml_catalogue_gives_the_tables_the_python_catalogue_gave():
    """``catalogue.yaml`` + the loader give the tables of the former catalogue-as-code module.

    ``fixtures/catalogue_table.csv`` and ``fixtures/catalogue_reported_mapping.csv`` were written by
    that module (``catalogue_table()``, ``reported_mapping()``); a deliberate edit of the catalogue
    rewrites them in the same commit.
    """
    read = {"keep_default_na": False, "dtype": str}
    assert_frame_equal(catalogue_table(), pd.read_csv(FIXTURES / "catalogue_table.csv", **read))
    assert_frame_equal(reported_mapping(), pd.read_csv(FIXTURES / "catalogue_reported_mapping.csv", **read))
    # a group's fields, overridden by the system's own
    card = lookup("04", "No pseudo-labels")
    assert card.objective.endswith("true attributes (domain only where hidden) x domain; mixup, StatEx, FeatEx "
                                   "(C/3C/9C heads)")
    assert card.backbone == "SE-ResNet18 + |FFT| branch" and card.status == "from the plan"
    assert lookup("05", "EAT-FFT no-SMOTE").reported_as == () and lookup("05", "EAT-FFT").reported_as == (
        ("003", "EAT-FFT"),)


def test_catalogue_file_errors_name_the_file(tmp_path):
    """Unknown groups/fields, missing fields and duplicates raise ValueError naming the file."""
    good = {"notebook": "09", "report": "x", "features": "f", "backbone": "b", "adaptation": "frozen",
            "objective": "o", "data": "d", "back_end": "k"}
    path = tmp_path / "cat.yaml"
    path.write_text(yaml.safe_dump({"groups": {"g": good}, "systems": [{"system": "A", "group": "g"}]}))
    (card,) = catalogue.load_catalogue(path)
    assert card == SystemCard(system="A", **good)
    cases = [({"systems": [{"system": "A", "group": "nope"}]}, "unknown group"),
             ({"systems": [{"system": "A", "colour": "red", **good}]}, "unknown fields"),
             ({"systems": [{"system": "A", "notebook": "09"}]}, "missing"),
             ({"systems": [{"system": "A", **good}, {"system": "A", **good}]}, "more than once")]
    for doc, message in cases:
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(ValueError, match=message) as error:
            catalogue.load_catalogue(path)
        assert "cat.yaml" in str(error.value)
