"""Tests of asd_utils.notebook.explorer: rank normalisation, decisions (submitted or rank rule), the clips most
systems get wrong, hidden truth, and the widget rendering headless with its default selection."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from test_bootstrap import make_test_index, perfect_scores, write_system  # noqa: E402

from asd_utils.evaluation import results
from asd_utils.evaluation.bootstrap import read_clip_scores  # noqa: E402
from asd_utils.notebook import explorer  # noqa: E402


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


def _with_audio(tmp_path, index):
    import soundfile as sf

    wav_dir = tmp_path / "fan"
    wav_dir.mkdir()
    paths = []
    for name in index["file_name"]:
        sf.write(wav_dir / name, 0.1 * np.sin(np.arange(8000) / 5.0).astype(np.float32), 16000)
        paths.append(str(wav_dir / name))
    return index.assign(path=paths)


def _kinds(pane):
    return [set(output.get("data", {})) or {output["output_type"]} for output in pane.outputs]


def test_explorer_renders_every_pane_once_per_change_as_data(tmp_path):
    index, clip_scores = _clip_scores(tmp_path)
    index = _with_audio(tmp_path, index)
    box = explorer.explorer(clip_scores, index, caveat="* synthetic data")
    assert box.machine.value == "fan" and box.systems.value == ("01 Perfect", "02 Inverted")
    assert box.clip.value is not None and len(box.clip.options) == 16
    # the most-wrong clip is picked without any interaction; "wrong" is counted over systems
    assert box.clip.value == box.clip.options[0][1] and box.clip.options[0][0].startswith("1/2 systems wrong")
    assert "<b>wrong</b>" in box.children[0].value and "* synthetic data" in box.children[0].value
    # every figure is PNG data in its own pane: heat map; audio + spectrogram; rank chart + facts
    assert _kinds(box.heatmap) == [{"image/png", "text/plain"}]
    audio, spectrogram = _kinds(box.clip_view)
    assert "text/html" in audio and "image/png" in spectrogram
    assert "image/png" in _kinds(box.clip_facts)[0] and "text/html" in _kinds(box.clip_facts)[1]
    assert "overflow-x:auto" in box.top_clips.outputs[0]["data"]["text/html"]
    assert box.draws == {"heatmap": 1, "clip": 1}
    first_heatmap, first_clip = box.heatmap.outputs[0], box.clip_view.outputs[1]
    box.systems.value = ("02 Inverted",)  # one change: each pane drawn once more
    assert box.draws == {"heatmap": 2, "clip": 2}
    assert box.heatmap.outputs[0] is not first_heatmap and box.clip_view.outputs[1] is first_clip  # same clip
    assert box.clip.options[0][0].startswith("1/1 systems wrong")
    box.clip.value = box.clip.options[3][1]  # a clip change redraws the clip panes only
    assert box.draws == {"heatmap": 2, "clip": 3}
    box.systems.value = ("01 Perfect", "02 Inverted")  # back to a seen selection: its drawings are reused
    assert box.heatmap.outputs[0] is first_heatmap
    box.systems.value = ()
    assert box.clip.value is None and box.heatmap.outputs[0]["text"].startswith("no selected system")
    empty = explorer.explorer(clip_scores.iloc[:0], index)
    assert "No labelled" in empty.value


def test_default_systems_best_overall_plus_best_of_each_notebook():
    labels = ["01 AE-MSE", "01 AE-MAHALA", "02 S1", "02 S2", "06 K", "06 G"]
    ranking = {"01 AE-MSE": 0.6, "01 AE-MAHALA": 0.62, "02 S1": 0.5, "02 S2": 0.7, "06 K": 0.65, "06 G": 0.4}
    assert explorer.default_systems(labels, ranking) == ["01 AE-MAHALA", "02 S2", "06 K"]
    # no recorded results: each notebook's first system, in the order given
    assert explorer.default_systems(labels) == ["01 AE-MSE", "02 S1", "06 K"]


def test_rank_thresholds_sit_at_the_share_decided_normal():
    table = pd.DataFrame({
        "section": ["00"] * 4 + ["01"] * 2,
        "rank:A": [0.25, 0.5, 0.75, 1.0, 0.5, 1.0], "decision:A": [0, 0, 0, 1, 0, 0],
        "rank:B": [0.25, 0.5, 0.75, 1.0, 0.5, 1.0], "decision:B": [0, 1, 1, 1, 1, 1],
    })
    limits = explorer.rank_thresholds(table)
    assert limits.loc["00", "A"] == 0.75 and limits.loc["00", "B"] == 0.25
    assert limits.loc["01", "A"] == 1.0 and limits.loc["01", "B"] == 0.0
    # a clip decided anomalous ranks above its system's threshold
    fig = explorer.clip_rank_figure(_pd_row(table, 3, file_name="x.wav", domain="source", label="anomaly"), limits)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 0], [0.75, 0.25])  # the threshold ticks
    np.testing.assert_allclose([p.get_width() for p in ax.patches], [1.0, 1.0])


def _pd_row(table, i, **extra):
    return pd.concat([table.iloc[i], pd.Series(extra)])


def test_rank_heatmap_outlines_wrong_decisions_readably(tmp_path):
    index, clip_scores = _clip_scores(tmp_path)
    table, _ = explorer.clip_table(clip_scores, "fan")
    fig = explorer.rank_heatmap(table, title="fan", caveat="synthetic")
    ax = fig.axes[0]
    (outlines,) = ax.collections  # one outline per wrong decision, drawn as one collection
    corners = np.array([path.vertices[0] for path in outlines.get_paths()])
    # the inverted system (row 1) is wrong on every one of the 16 clips, the perfect one on none
    assert len(corners) == 16 and np.allclose(corners[:, 1], 0.5) and sorted(corners[:, 0] + 0.5) == list(range(16))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["01 Perfect", "02 Inverted"]
    assert explorer.system_label("05_xju_subcenter", "EAT-FFT") == "05 EAT-FFT"
    # 44 systems: still at most an output area wide, every label at 9 pt or more
    many = table.copy()
    for k in range(44):
        many[f"rank:S{k:02d}"] = table["rank:01 Perfect"]
        many[f"decision:S{k:02d}"] = table["decision:01 Perfect"]
    many = many.drop(columns=[c for c in many.columns if c.endswith(("01 Perfect", "02 Inverted"))])
    fig = explorer.rank_heatmap(many, title="many")
    width, _ = fig.get_size_inches()
    ax = fig.axes[0]
    labels = ax.get_yticklabels() + ax.get_xticklabels()
    assert width <= 10.5 and len(ax.get_yticklabels()) == 44
    assert min(label.get_fontsize() for label in labels) >= 9
