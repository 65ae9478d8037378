"""Tests for asd_utils.data.index and asd_utils.data.attributes on tiny WAV trees in tmp_path."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from asd_utils.data import (
    INDEX_COLUMNS,
    DataError,
    discover,
    ground_truth_path,
    machine_types,
    normalise_clip_name,
    read_attributes_csv,
    read_ground_truth,
    select,
    summary_counts,
)

SR = 16000


def _wav(path: Path, n: int = 160) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(n, dtype=np.float32), SR)
    return path


def _machine(folder: Path, names_by_split: dict[str, list[str]]) -> Path:
    for split, names in names_by_split.items():
        for name in names:
            _wav(folder / split / name)
    return folder


FAN_TRAIN = [
    "section_00_source_train_normal_0000_m-n_W.wav",
    "section_00_source_train_normal_0001_m-n_X.wav",
    "section_00_target_train_normal_0000_noAttribute.wav",
]
FAN_TEST = [
    "section_00_source_test_normal_0000_m-n_W.wav",
    "section_00_source_test_anomaly_0000_m-n_W.wav",
    "section_00_target_test_normal_0000_m-n_Y.wav",
    "section_00_target_test_anomaly_0000_m-n_Y.wav",
]


@pytest.fixture
def dcase_root(tmp_path):
    root = tmp_path / "dcase"
    fan = _machine(root / "dev_data" / "raw" / "fan", {"train": FAN_TRAIN, "test": FAN_TEST})
    (fan / "attributes_00.csv").write_text(
        "\ufefffile_name,d1p,d1v,,\n"
        "fan/train/section_00_source_train_normal_0000_m-n_W.wav,m-n,W,,\n"
        "fan/train/section_00_target_train_normal_0000_noAttribute.wav,m-n,Z,,\n",
        encoding="utf-8",
    )
    _machine(root / "dev_data" / "raw" / "Zeppelin", {  # a machine type nobody has listed
        "train": ["section_00_source_train_normal_0005_noAttribute.wav",
                  "section_00_target_train_normal_0002_noAttribute.wav"],
        "test": ["section_00_source_test_anomaly_0007_noAttribute.wav"],
        "supplemental": ["section_00_source_supplemental_clean_0000_noAttribute.wav",
                         "section_00_source_supplemental_noise_0001_noAttribute.wav"],
    })
    _machine(root / "eval_data" / "raw" / "Widget", {
        "train": ["section_00_source_train_normal_0000_spd_1.wav"],
        "test": ["section_00_0000.wav", "section_00_0001.wav", "section_00_0002.wav"],
        "supplemental": ["section_00_machine_0001_.wav", "section_00_noise_0002_.wav"],
    })
    return root


def _write_ground_truth(folder: Path, machine="Widget"):
    (folder / "ground_truth_data").mkdir(parents=True)
    (folder / "ground_truth_domain").mkdir(parents=True)
    name = f"ground_truth_{machine}_section_00_test.csv"
    (folder / "ground_truth_data" / name).write_text("section_00_0000.wav,1\nsection_00_0001.wav,0\n")
    (folder / "ground_truth_domain" / name).write_text("section_00_0000.wav,0\nsection_00_0001.wav,1\n")


def test_discover_columns_rows_and_order(dcase_root):
    index = discover(dcase_root)
    assert list(index.columns) == INDEX_COLUMNS
    assert len(index) == 3 + 4 + 2 + 1 + 2 + 1 + 3 + 2
    assert machine_types(index) == ["Widget", "Zeppelin", "fan"]
    keys = list(zip(index.machine, index.split, index.file_name))
    assert keys == sorted(keys)
    assert index.is_anomaly.dtype == np.float64
    assert set(index.dataset[index.machine == "Widget"]) == {"eval"}
    assert set(index.dataset[index.machine != "Widget"]) == {"dev"}
    assert all(Path(p).is_file() for p in index.path)
    assert (index.section == "00").all()


def test_discover_parsed_fields(dcase_root):
    index = discover(dcase_root).set_index("file_name")
    row = index.loc["section_00_source_test_anomaly_0000_m-n_W.wav"]
    assert (row.machine, row.split, row.domain, row.label, row.is_anomaly) == ("fan", "test", "source", "anomaly", 1.0)
    assert row.attribute_dict == {"m-n": "W"}
    assert row.clip_index == "0000"
    blinded = index.loc["section_00_0002.wav"]
    assert blinded.domain is None and blinded.label is None
    assert math.isnan(blinded.is_anomaly)
    supp = index[index.split == "supplemental"]
    assert dict(zip(supp.machine + "/" + supp.clip_index, supp.supplemental_kind)) == {
        "Widget/0001": "clean", "Widget/0002": "noise", "Zeppelin/0000": "clean", "Zeppelin/0001": "noise",
    }
    assert index.loc[FAN_TRAIN[0], "supplemental_kind"] is None


def test_hidden_attributes_stay_hidden_csv_recorded_apart(dcase_root):
    index = discover(dcase_root).set_index("file_name")
    hidden = index.loc["section_00_target_train_normal_0000_noAttribute.wav"]
    assert hidden.attributes == "noAttribute"
    assert hidden.attribute_dict == {}
    assert hidden.attributes_csv == {"m-n": "Z"}
    # CSV says nothing more than the name: no attributes_csv
    assert index.loc[FAN_TRAIN[0], "attributes_csv"] is None
    assert index.loc[FAN_TRAIN[1], "attributes_csv"] is None


def test_ground_truth_merged_from_root(dcase_root):
    _write_ground_truth(dcase_root)
    index = discover(dcase_root).set_index("file_name")
    first, second, third = (index.loc[f"section_00_000{i}.wav"] for i in range(3))
    assert (first.label, first.is_anomaly, first.domain) == ("anomaly", 1.0, "source")
    assert (second.label, second.is_anomaly, second.domain) == ("normal", 0.0, "target")
    assert third.label is None and third.domain is None  # not in the CSVs: stays unknown


def test_ground_truth_dir_argument(dcase_root, tmp_path):
    gt = tmp_path / "dcase2025_task2_evaluator"
    _write_ground_truth(gt)
    index = discover(dcase_root, ground_truth_dir=gt).set_index("file_name")
    assert index.loc["section_00_0000.wav", "label"] == "anomaly"


def test_folder_of_machine_folders_and_dataset_guess(dcase_root):
    index = discover(dcase_root / "eval_data" / "raw")
    assert machine_types(index) == ["Widget"]
    assert set(index.dataset) == {"eval"}
    index = discover(dcase_root / "dev_data" / "raw", dataset="eval")
    assert set(index.dataset) == {"eval"}
    index = discover(dcase_root / "dev_data")  # holds raw/<machine>
    assert machine_types(index) == ["Zeppelin", "fan"]


def test_splits_argument(dcase_root):
    index = discover(dcase_root, splits=("test",))
    assert set(index.split) == {"test"}
    assert len(index) == 4 + 1 + 3
    index = discover(dcase_root, splits="supplemental")
    assert set(index.split) == {"supplemental"}
    with pytest.raises(DataError, match="validation"):
        discover(dcase_root, splits=("validation",))


def test_empty_supplemental_selection_keeps_columns(tmp_path):
    _machine(tmp_path / "m", {"train": ["section_00_source_train_normal_0000_a_1.wav"]})
    index = discover(tmp_path, splits=("supplemental",))
    assert len(index) == 0
    assert list(index.columns) == INDEX_COLUMNS


def test_missing_root_raises(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as err:
        discover(missing)
    assert str(missing) in str(err.value)


def test_root_without_machine_folders_raises(tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(DataError, match="no machine folders") as err:
        discover(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_machine_without_train_clips_raises(tmp_path):
    _machine(tmp_path / "pump", {"test": ["section_00_source_test_normal_0000_a_1.wav"]})
    (tmp_path / "pump" / "train").mkdir()
    with pytest.raises(DataError, match="no training clips") as err:
        discover(tmp_path)
    assert "pump" in str(err.value)
    assert len(discover(tmp_path, splits=("test",))) == 1


def test_unparseable_name_in_tree_raises(tmp_path):
    _machine(tmp_path / "pump", {"train": ["section_00_source_train_normal_0000_a_1.wav", "weird_clip.wav"]})
    with pytest.raises(DataError, match="weird_clip.wav") as err:
        discover(tmp_path)
    assert str(tmp_path / "pump" / "train") in str(err.value)


def test_unreadable_attributes_csv_in_tree_raises(tmp_path):
    pump = _machine(tmp_path / "pump", {"train": ["section_00_source_train_normal_0000_a_1.wav"]})
    (pump / "attributes_00.csv").write_bytes(b"file_name,d1p\n\xff\xfe\xfa bad,\x81\n")
    with pytest.raises(DataError, match="attributes_00.csv"):
        discover(tmp_path)


def test_unknown_supplemental_kind_warns_and_stays_none(tmp_path):
    _machine(tmp_path / "pump", {"train": ["section_00_source_train_normal_0000_a_1.wav"],
                                 "supplemental": ["section_00_source_supplemental_0000_a_1.wav"]})
    with pytest.warns(UserWarning, match="section_00_source_supplemental_0000_a_1.wav"):
        index = discover(tmp_path)
    row = index[index.split == "supplemental"].iloc[0]
    assert row.supplemental_kind is None


def test_non_wav_and_hidden_files_ignored(tmp_path):
    pump = _machine(tmp_path / "pump", {"train": ["section_00_source_train_normal_0000_a_1.wav"]})
    (pump / "train" / "notes.txt").write_text("x")
    (pump / "train" / "._section_00_source_train_normal_0000_a_1.wav").write_bytes(b"junk")
    assert len(discover(tmp_path)) == 1


def test_select(dcase_root):
    index = discover(dcase_root)
    fan_test = select(index, machine="fan", split="test")
    assert len(fan_test) == 4 and list(fan_test.index) == [0, 1, 2, 3]
    assert len(select(index, machine="fan", split="test", domain="target")) == 2
    assert len(select(index, machine=["fan", "Zeppelin"], split="train")) == 5
    assert len(select(index, section=0)) == len(index)
    assert len(select(index, section=["01"])) == 0
    assert len(select(index, dataset="eval")) == 6
    assert len(select(index, label="anomaly")) == 3
    with pytest.raises(DataError, match="Zeppelin"):
        select(index, machine="ToyCar")


def test_summary_counts(dcase_root):
    counts = summary_counts(discover(dcase_root))
    assert list(counts.columns) == ["machine", "split", "domain", "label", "n_clips"]
    table = {tuple(r[:4]): r[4] for r in counts.itertuples(index=False)}
    assert table[("fan", "train", "source", "normal")] == 2
    assert table[("fan", "test", "target", "anomaly")] == 1
    assert table[("Widget", "test", "unknown", "unknown")] == 3
    assert table[("Zeppelin", "supplemental", "source", "unknown")] == 2
    assert counts.n_clips.sum() == 18


# --------------------------------------------------------------------------- attributes CSV


def test_normalise_clip_name():
    assert normalise_clip_name("fan/train/section_00_x_0000.wav") == "section_00_x_0000.wav"
    assert normalise_clip_name("section_00_x_0000") == "section_00_x_0000.wav"
    assert normalise_clip_name("a\\b\\section_00_x_0000.WAV") == "section_00_x_0000.WAV"


def test_read_attributes_csv_prefix_bom_trailing_columns(tmp_path):
    path = tmp_path / "attributes_00.csv"
    path.write_text(
        "\ufefffile_name,d1p,d1v,d2p,d2v,,\n"
        "ToyCar/train/section_00_source_train_normal_0000_car_A1_spd_28V.wav,car,A1,spd,28V,,\n"
        "ToyCar/test/section_00_source_test_anomaly_0001_car_A2_spd_31V.wav,car,A2,spd,31V,,\n"
        "\n",
        encoding="utf-8",
    )
    table = read_attributes_csv(path)
    assert list(table.columns) == ["file_name", "raw_file_name", "attribute_dict"]
    assert list(table.file_name) == ["section_00_source_train_normal_0000_car_A1_spd_28V.wav",
                                     "section_00_source_test_anomaly_0001_car_A2_spd_31V.wav"]
    assert table.attribute_dict[1] == {"car": "A2", "spd": "31V"}
    assert table.raw_file_name[0].startswith("ToyCar/train/")


def test_read_attributes_csv_no_prefix_no_suffix_and_no_attribute_columns(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("file_name,d1p,d1v\nsection_00_source_train_normal_0000_noAttribute,,\n")
    table = read_attributes_csv(path)
    assert table.file_name[0] == "section_00_source_train_normal_0000_noAttribute.wav"
    assert table.attribute_dict[0] == {}
    path.write_text("file_name\nbearing/train/section_00_source_train_normal_0000_noAttribute.wav\n")
    assert read_attributes_csv(path).attribute_dict[0] == {}


def test_read_attributes_csv_headerless_and_header_only(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("fan/train/section_00_source_train_normal_0000_m-n_W.wav,m-n,W\n")
    assert read_attributes_csv(path).attribute_dict[0] == {"m-n": "W"}
    path.write_text("file_name,d1p,d1v\n")
    assert len(read_attributes_csv(path)) == 0


def test_read_attributes_csv_pairs_by_number(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("file_name,d2p,d2v,d1p,d1v\nsection_00_a_0000.wav,b,2,a,1\n")
    assert list(read_attributes_csv(path).attribute_dict[0].items()) == [("a", "1"), ("b", "2")]


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"\xff\xfe\x00\x81garbage,\x9f\n", "cannot read"),
    (b"speed,volume\n1,2\n", "file_name"),
])
def test_read_attributes_csv_unreadable(tmp_path, content, match):
    path = tmp_path / "attributes_00.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as err:
        read_attributes_csv(path)
    assert str(path) in str(err.value)


def test_read_attributes_csv_missing(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_attributes_csv(tmp_path / "attributes_07.csv")


# --------------------------------------------------------------------------- ground truth


def test_read_ground_truth(tmp_path):
    _write_ground_truth(tmp_path)
    table = read_ground_truth(tmp_path, "Widget", 0)
    assert list(table.columns) == ["file_name", "label", "is_anomaly", "domain"]
    assert list(table.itertuples(index=False, name=None)) == [
        ("section_00_0000.wav", "anomaly", 1.0, "source"),
        ("section_00_0001.wav", "normal", 0.0, "target"),
    ]
    assert ground_truth_path(tmp_path, "Widget", "00", "data").name == "ground_truth_Widget_section_00_test.csv"
    assert ground_truth_path(tmp_path, "Widget", "01", "data") is None


def test_read_ground_truth_absent_is_empty(tmp_path):
    table = read_ground_truth(tmp_path, "Widget", "00")
    assert len(table) == 0
    assert list(table.columns) == ["file_name", "label", "is_anomaly", "domain"]


def test_read_ground_truth_attributes_fallback(tmp_path):
    folder = tmp_path / "eval_data" / "ground_truth_attributes"
    folder.mkdir(parents=True)
    (folder / "ground_truth_Gizmo_section_00_test.csv").write_text(
        "section_00_0001.wav,section_00_target_test_anomaly_0001_mdl_B_spd_2\n"
        "section_00_0003.wav,section_00_source_test_normal_0003_mdl_A_spd_1\n"
    )
    table = read_ground_truth(tmp_path, "Gizmo", "00")
    assert list(table.label) == ["anomaly", "normal"]
    assert list(table.domain) == ["target", "source"]


def test_read_ground_truth_bad_value(tmp_path):
    _write_ground_truth(tmp_path)
    path = tmp_path / "ground_truth_data" / "ground_truth_Widget_section_00_test.csv"
    path.write_text("section_00_0000.wav,1\nsection_00_0001.wav,7\n")
    with pytest.raises(DataError, match="expected 0 or 1") as err:
        read_ground_truth(tmp_path, "Widget", "00")
    assert str(path) in str(err.value)


def test_index_frame_types(dcase_root):
    index = discover(dcase_root)
    assert isinstance(index, pd.DataFrame)
    assert index.domain.dtype == object and index.label.dtype == object
    assert all(isinstance(d, dict) for d in index.attribute_dict)
