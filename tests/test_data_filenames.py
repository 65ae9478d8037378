"""Tests for asd_utils.data.filenames: DCASE 2022-2025 clip names."""

import math

import pytest

from asd_utils.data import ClipName, DataError, parse_attributes, parse_filename


def test_dev_train_name_with_attributes():
    clip = parse_filename("section_00_source_train_normal_0000_car_A1_spd_28V_mic_1_noise_1.wav")
    assert clip == ClipName(
        file_name="section_00_source_train_normal_0000_car_A1_spd_28V_mic_1_noise_1.wav",
        section="00", domain="source", split="train", label="normal", clip_index="0000",
        attributes="car_A1_spd_28V_mic_1_noise_1",
        attribute_dict={"car": "A1", "spd": "28V", "mic": "1", "noise": "1"},
        supplemental_kind=None, blinded=False,
    )
    assert clip.is_anomaly == 0.0


def test_hidden_attributes_no_attribute():
    clip = parse_filename("section_00_target_train_normal_0009_noAttribute.wav")
    assert clip.attributes == "noAttribute"
    assert clip.attribute_dict == {}
    assert clip.domain == "target"
    assert clip.clip_index == "0009"


def test_dev_test_anomaly_and_path_input():
    clip = parse_filename("/data/dev_data/raw/fan/test/section_02_target_test_anomaly_0042_m-n_W.wav")
    assert clip.file_name == "section_02_target_test_anomaly_0042_m-n_W.wav"
    assert (clip.section, clip.domain, clip.split, clip.label) == ("02", "target", "test", "anomaly")
    assert clip.attribute_dict == {"m-n": "W"}
    assert clip.is_anomaly == 1.0


def test_2022_name_same_shape():
    clip = parse_filename("section_05_source_test_normal_0099_v1pat_02_v2pat_00.wav")
    assert clip.section == "05"
    assert clip.attribute_dict == {"v1pat": "02", "v2pat": "00"}


@pytest.mark.parametrize("name", [
    "section_00_source_train_normal_0003.wav",
    "section_00_source_train_normal_0003_.wav",
])
def test_no_attributes_after_index(name):
    clip = parse_filename(name)
    assert clip.attributes == ""
    assert clip.attribute_dict == {}
    assert clip.label == "normal"


@pytest.mark.parametrize("name", ["section_00_0000.wav", "section_00_test_0000.wav"])
def test_blinded_eval_name(name):
    clip = parse_filename(name)
    assert clip.blinded is True
    assert clip.domain is None and clip.label is None
    assert clip.split == "test"
    assert clip.clip_index == "0000"
    assert math.isnan(clip.is_anomaly)


def test_supplemental_synthetic_naming():
    clean = parse_filename("section_00_source_supplemental_clean_0001_car_A1.wav")
    noise = parse_filename("section_01_target_supplemental_noise_0002_noAttribute.wav")
    assert (clean.split, clean.supplemental_kind, clean.domain) == ("supplemental", "clean", "source")
    assert clean.attribute_dict == {"car": "A1"}
    assert (noise.split, noise.supplemental_kind, noise.section) == ("supplemental", "noise", "01")
    assert clean.label is None and not clean.blinded


@pytest.mark.parametrize("name, kind, domain", [
    ("section_00_machine_0001_.wav", "clean", None),  # DCASE 2025 eval supplemental
    ("section_00_noise_0100_.wav", "noise", None),
    ("section_00_machine_source_0000_noAttribute.wav", "clean", "source"),  # DCASE 2025 dev
    ("section_00_noise_target_0007_noAttribute.wav", "noise", "target"),
])
def test_supplemental_dcase2025_naming(name, kind, domain):
    clip = parse_filename(name)
    assert clip.split == "supplemental"
    assert clip.supplemental_kind == kind
    assert clip.domain == domain


def test_supplemental_kind_from_folder_and_attribute_tokens():
    clip = parse_filename("section_00_source_0004_rec_clean.wav", split="supplemental")
    assert clip.split == "supplemental"
    assert clip.supplemental_kind == "clean"
    # unknown kind is never assumed
    assert parse_filename("section_00_source_0004_a_1.wav", split="supplemental").supplemental_kind is None


def test_kind_ignored_outside_supplemental():
    # ToyCar attribute key "noise" must not make a train clip a noise clip
    clip = parse_filename("section_00_source_train_normal_0000_car_A1_noise_1.wav")
    assert clip.supplemental_kind is None


def test_folder_split_overrides_name():
    assert parse_filename("section_00_source_train_normal_0000_a_1.wav", split="test").split == "test"


@pytest.mark.parametrize("name, reason", [
    ("readme.txt", ".wav"),
    ("normal_id_00_00000000.wav", "section_<two digits>"),
    ("section_0_source_train_normal_0000.wav", "section_<two digits>"),
    ("section_00_source_train_normal.wav", "clip index"),
    ("section_00_banana_train_normal_0000.wav", "banana"),
    ("section_00_source_target_train_normal_0000.wav", "two different domain"),
    ("section_00_source_normal_0000.wav", "no split token"),
])
def test_unparseable_names_raise(name, reason):
    with pytest.raises(DataError) as err:
        parse_filename(name)
    message = str(err.value)
    assert name in message
    assert reason in message
    assert "section_<ss>_<source|target>_<train|test>_<normal|anomaly>_<nnnn>" in message


def test_bad_split_hint_raises():
    with pytest.raises(DataError, match="validation"):
        parse_filename("section_00_0000.wav", split="validation")


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


@pytest.mark.parametrize("text, expected", [
    ("car_A1_spd_28V_mic_1", {"car": "A1", "spd": "28V", "mic": "1"}),
    ("noAttribute", {}),
    ("", {}),
    ("strength_1_ambient", {"strength": "1"}),  # dangling key dropped
    ("1_vel_6_loc_A", {"vel": "6", "loc": "A"}),  # leading number is not a key
    ("a_1_a_2", {"a": "1"}),  # repeated key keeps the first value
    ("volt_1.0_wt_30", {"volt": "1.0", "wt": "30"}),
])
def test_parse_attributes_defensive(text, expected):
    assert parse_attributes(text) == expected


def test_clipname_is_frozen_and_hashable():
    clip = parse_filename("section_00_0001.wav")
    with pytest.raises(AttributeError):
        clip.section = "01"
    assert hash(clip) == hash(parse_filename("section_00_0001.wav"))
