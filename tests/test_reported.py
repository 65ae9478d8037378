import pandas as pd
import pytest

from asd_utils.evaluation import reported


def _tidy():
    return pd.DataFrame(
        [
            dict(system="A", machine="fan", section="00", auc_source=0.8, auc_target=0.6, pauc=0.5),
            dict(system="A", machine="valve", section="00", auc_source=0.4, auc_target=0.6, pauc=0.5),
        ]
    )


def test_reproduced_long_totals_are_harmonic_means_in_percent():
    long = reported.reproduced_long(_tidy()).set_index(["machine", "metric"])["value"]
    assert long[("fan", "auc_source")] == pytest.approx(80.0)
    assert long[("Total", "auc_source")] == pytest.approx(100 * 2 / (1 / 0.8 + 1 / 0.4))
    values = [0.8, 0.6, 0.5, 0.4, 0.6, 0.5]
    assert long[("Total", "hmean")] == pytest.approx(100 * len(values) / sum(1 / v for v in values))


def test_side_by_side_matches_machine_names_case_insensitively_and_maps_totals(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("table,system,machine,metric,value\nT1,Paper-A,Fan,auc_source,71.5\nT1,Paper-A,All,auc_source,60\n")
    side = reported.side_by_side(_tidy(), reported.load_reported(path), {"A": "Paper-A"})
    row = side[(side["machine"] == "fan") & (side["metric"] == "auc_source")].iloc[0]
    assert (row["reproduced"], row["reported"]) == (pytest.approx(80.0), 71.5)
    total = side[(side["machine"] == "Total") & (side["metric"] == "auc_source")].iloc[0]
    assert total["reported"] == 60
    assert side[(side["machine"] == "valve")]["reported"].isna().all()


def test_bad_reported_csv_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("system,machine,value\nA,fan,1\n")
    with pytest.raises(ValueError, match="bad.csv: missing columns"):
        reported.load_reported(path)


@pytest.mark.parametrize("csv", sorted(p.name for p in reported.papers_dir().glob("*.csv")))
def test_committed_reported_tables_are_well_formed(csv):
    frame = reported.load_reported(csv)
    assert len(frame) > 0
    assert frame["value"].between(0, 100).all()
