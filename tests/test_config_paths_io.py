import json
import os

import numpy as np
import pandas as pd
import pytest

from asd_utils import io_utils, paths
from asd_utils.config import CONFIG_DIR, deep_merge, load_config


def test_deep_merge_overrides_nested_values_without_mutating():
    base = {"a": 1, "ae": {"epochs": 100, "lr": 1e-3}}
    merged = deep_merge(base, {"ae": {"epochs": 1}})
    assert merged == {"a": 1, "ae": {"epochs": 1, "lr": 1e-3}}
    assert base["ae"]["epochs"] == 100


@pytest.mark.parametrize("config", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
@pytest.mark.parametrize("profile", paths.PROFILES)
def test_every_config_loads_for_every_profile(config, profile):
    cfg = load_config(config, profile)
    assert cfg["profile"] == profile


def test_baseline_profiles_differ_only_where_intended():
    assert load_config("01_baseline", "paper")["ae"]["epochs"] == 100
    assert load_config("01_baseline", "smoke")["ae"]["epochs"] == 1
    assert load_config("01_baseline", "smoke")["ae"]["n_mels"] == 128


def test_unknown_config_and_profile_are_named():
    with pytest.raises(FileNotFoundError, match="no config nope.yaml"):
        load_config("nope", "smoke")
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        load_config("01_baseline", "fast")


def test_project_root_follows_asd_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ASD_HOME", str(tmp_path))
    assert paths.results_dir("smoke") == tmp_path / "results" / "smoke"
    assert paths.synthetic_root("default") == tmp_path / "data" / "synth_default"


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "r.json"
    io_utils.atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with io_utils.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_atomic_npz_and_csv_round_trip(tmp_path):
    io_utils.atomic_save_npz(tmp_path / "x.npz", a=np.arange(3))
    assert np.load(tmp_path / "x.npz")["a"].tolist() == [0, 1, 2]
    io_utils.atomic_write_csv(tmp_path / "t.csv", pd.DataFrame({"x": [1, 2]}))
    assert (tmp_path / "t.csv").read_text() == "x\n1\n2\n"


def test_hashes_are_stable_and_sensitive(tmp_path):
    assert io_utils.stable_hash({"b": 1, "a": 2}) == io_utils.stable_hash({"a": 2, "b": 1})
    assert io_utils.stable_hash({"a": 1}) != io_utils.stable_hash({"a": 2})
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    assert io_utils.file_sha256(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    before = io_utils.files_fingerprint([f])
    os.utime(f, ns=(5, 5))
    assert io_utils.files_fingerprint([f]) != before
