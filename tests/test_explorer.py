"""Tests of asd_utils.explorer: rank normalisation, decisions (submitted or rank rule), the clips most
systems get wrong, hidden truth, and the widget rendering headless with its default selection."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from test_bootstrap import make_test_index, perfect_scores, write_system  # noqa: E402

from asd_utils import explorer, results  # noqa: E402
from asd_utils.bootstrap import read_clip_scores  # noqa: E402


def test_rank_normalise_within_groups_with_ties():
    scores = pd.DataFrame({"A": [3.0, 1.0, 2.0, 10.0, 10.0], "B": [0.0, 0.0, 0.0, -1.0, 5.0]})
    ranks = explorer.rank_normalise(scores, ["s1", "s1", "s1", "s2", "s2"])
    np.testing.assert_allclose(ranks["A"], [1.0, 1 / 3, 2 / 3, 0.75, 0.75])
    np.testing.assert_allclose(ranks["B"], [2 / 3, 2 / 3, 2 / 3, 0.5, 1.0])


def _clip_scores(tmp_path):
    index = make_test_index(("fan",), per_cell=4)
    perfect = perfect_scores(index)
    inverted = -perfect  # every clip on the wrong side
    write_system(tmp_path, "01_a", "Perfect", index, perfect, decisions=False)
    write_system(tmp_path, "02_b", "Inverted", index, inverted)
    return index, read_clip_scores(tmp_path, results.collect_results(tmp_path))


def test_clip_table_decision_rules_and_error_table(tmp_path):
    index, clip_scores = _clip_scores(tmp_path)
    table, rules = explorer.clip_table(clip_scores, "fan", index=index)
    assert rules == {"01 Perfect": explorer.RANK_RULE, "02 Inverted": explorer.DECISION_FILES}
    assert len(table) == 16 and table["path"].str.startswith("/nowhere/fan/test/").all()
    anomalous = table["label"] == "anomaly"
    # rank rule: the perfect scorer puts all 8 anomalies in the upper half of the 16 clips
    assert (table.loc[anomalous, "decision:01 Perfect"] == 1).all()
    assert (table.loc[~anomalous, "decision:01 Perfect"] == 0).all()
    assert table.loc[anomalous, "rank:01 Perfect"].min() > 0.5
    # the inverted scorer's submitted decisions (threshold = median of its training scores): anomalies
    # score lowest -> decided normal
    assert (table.loc[anomalous, "decision:02 Inverted"] == 0).all()
    errors = explorer.error_table(table)
    # the inverted system is wrong on every clip, the perfect one on none
    assert (errors["n_wrong"] == 1).all() and (errors["share_wrong"] == 0.5).all()
    assert set(errors.loc[errors["label"] == "anomaly", "error"]) == {"missed anomaly"}
    assert set(errors.loc[errors["label"] == "normal", "error"]) == {"false alarm"}
    # with a third system that misses only the target anomalies, those come first
    third = table.assign(**{"rank:03 Half": table["rank:01 Perfect"],
                            "decision:03 Half": np.where(anomalous & (table["domain"] == "target"), 0.0,
                                                         table["decision:01 Perfect"])})
    top = explorer.error_table(third)
    assert top.head(4)[["domain", "label", "n_wrong"]].values.tolist() == [["target", "anomaly", 2]] * 4
    assert top["share_wrong"].is_monotonic_decreasing and top.loc[4, "n_wrong"] == 1
    rates = explorer.error_rates(table).set_index(["system", "domain"])
    assert rates.loc[("01 Perfect", "source"), "false_alarm_rate"] == 0.0
    assert rates.loc[("02 Inverted", "target"), "miss_rate"] == 1.0
    one, _ = explorer.clip_table(clip_scores, "fan", systems=["02 Inverted", "not there"])
    assert [c for c in one.columns if c.startswith("rank:")] == ["rank:02 Inverted"]
    detail = explorer.clip_details(errors, errors.loc[0, "file_name"])
    assert detail["machine"] == "fan"
    with pytest.raises(ValueError, match="not in the table"):
        explorer.clip_details(errors, "nope.wav")


def test_hidden_truth_is_read_from_the_synthetic_metadata(tmp_path):
    assert explorer.load_hidden_truth(tmp_path) is None  # real data: nothing hidden to show
    index, clip_scores = _clip_scores(tmp_path)
    rows = index[["machine", "file_name", "label"]].assign(
        machine_type="fan", split="test", domain=index["domain"],
        anomaly_kind=np.where(index["label"] == "anomaly", "bearing_outer", ""),
        severity=np.where(index["label"] == "anomaly", 0.7, 0.0), snr_db=3.5, gain_db=0.0, hall="A",
        attributes="speed_1_load_2")
    rows.to_csv(tmp_path / "synth_metadata.csv", index=False)
    truth = explorer.load_hidden_truth(tmp_path)
    assert list(truth.columns) == ["machine", "file_name", *explorer.HIDDEN_TRUTH_COLUMNS]
    table, _ = explorer.clip_table(clip_scores, "fan", truth=truth)
    anomaly = table[table["label"] == "anomaly"].iloc[0]
    assert anomaly["anomaly_kind"] == "bearing_outer" and anomaly["severity"] == 0.7
    assert table["true_attributes"].eq("speed_1_load_2").all() and table["snr_db"].eq(3.5).all()
    normal = table[table["label"] == "normal"].iloc[0]
    assert normal["anomaly_kind"] == ""
    (tmp_path / "synth_metadata.csv").write_text("machine,file_name\nfan,a.wav\n")
    with pytest.raises(ValueError, match="synth_metadata.csv"):
        explorer.load_hidden_truth(tmp_path)


def test_explorer_renders_headless_with_the_default_selection(tmp_path):
    import soundfile as sf

    index, clip_scores = _clip_scores(tmp_path)
    # real audio for the picked clip's player and spectrogram
    wav_dir = tmp_path / "fan"
    wav_dir.mkdir()
    paths = []
    for name in index["file_name"]:
        sf.write(wav_dir / name, 0.1 * np.sin(np.arange(8000) / 5.0).astype(np.float32), 16000)
        paths.append(str(wav_dir / name))
    index = index.assign(path=paths)
    box = explorer.explorer(clip_scores, index, caveat="* synthetic data")
    machine, systems, overview, clip, detail = box.children
    assert machine.value == "fan" and systems.value == ("01 Perfect", "02 Inverted")
    assert clip.value is not None and len(clip.options) == 16
    # the most-wrong clip is picked without any interaction (the notebook run checks the rendering itself)
    assert clip.value == clip.options[0][1] and clip.options[0][0].startswith("1/2 wrong")
    systems.value = ("02 Inverted",)  # a new selection refreshes the list
    assert clip.options[0][0].startswith("1/1 wrong")
    empty = explorer.explorer(clip_scores.iloc[:0], index)
    assert "No labelled" in empty.value


def test_rank_heatmap_outlines_wrong_decisions(tmp_path):
    index, clip_scores = _clip_scores(tmp_path)
    table, _ = explorer.clip_table(clip_scores, "fan")
    fig = explorer.rank_heatmap(table, title="fan", caveat="synthetic")
    ax = fig.axes[0]
    (outlines,) = ax.collections  # one outline per wrong decision, drawn as one collection
    corners = np.array([path.vertices[0] for path in outlines.get_paths()])
    # the inverted system (column 1) is wrong on every one of the 16 clips, the perfect one on none
    assert len(corners) == 16 and np.allclose(corners[:, 0], 0.5) and sorted(corners[:, 1] + 0.5) == list(range(16))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["01 Perfect", "02 Inverted"]
    assert explorer.system_label("05_xju_subcenter", "EAT-FFT") == "05 EAT-FFT"
