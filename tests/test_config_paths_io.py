import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest

from asd_utils import paths
from asd_utils.config import CONFIG_DIR, deep_merge, load_config
from asd_utils.storage import atomic, keys


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
    atomic.atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_atomic_npz_and_csv_round_trip(tmp_path):
    atomic.atomic_save_npz(tmp_path / "x.npz", a=np.arange(3))
    assert np.load(tmp_path / "x.npz")["a"].tolist() == [0, 1, 2]
    atomic.atomic_write_csv(tmp_path / "t.csv", pd.DataFrame({"x": [1, 2]}))
    assert (tmp_path / "t.csv").read_text() == "x\n1\n2\n"


def test_hashes_are_stable_and_sensitive(tmp_path):
    assert keys.stable_hash({"b": 1, "a": 2}) == keys.stable_hash({"a": 2, "b": 1})
    assert keys.stable_hash({"a": 1}) != keys.stable_hash({"a": 2})
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    assert keys.file_sha256(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"



def test_files_digest_follows_content_and_order_not_place(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    a.write_bytes(b"abc")
    b.write_bytes(b"xyz")
    digest = keys.files_digest([a, b])
    expected = hashlib.sha256((hashlib.sha256(b"abc").hexdigest() + hashlib.sha256(b"xyz").hexdigest()).encode())
    assert digest == expected.hexdigest()
    copy = tmp_path / "elsewhere" / "deeper"
    copy.mkdir(parents=True)
    shutil.copy(a, copy / "a.wav")  # a new path and a new modification time, the same bytes
    shutil.copy(b, copy / "b.wav")
    assert keys.files_digest([copy / "a.wav", copy / "b.wav"]) == digest
    assert keys.files_digest([b, a]) != digest
    os.utime(a, ns=(5, 5))  # touched, not changed
    assert keys.files_digest([a, b]) == digest
    a.write_bytes(b"abd")
    assert keys.files_digest([a, b]) != digest
    with pytest.raises(FileNotFoundError, match="missing.wav does not exist"):
        keys.files_digest([tmp_path / "missing.wav"])


def _fake_package(root, name="fakepkg"):
    """A package of three modules: ``train`` imports ``model`` inside a function; ``plots`` is apart."""
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text("WIDTH = 3\n")
    (pkg / "train.py").write_text("def fit():\n    from .model import WIDTH\n    return WIDTH\n")
    (pkg / "plots.py").write_text("COLOUR = 'red'\n")
    return pkg


def test_cache_key_follows_the_code_that_computes_the_result(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = _fake_package(tmp_path)
    assert keys.code_modules("fakepkg.train") == ["fakepkg", "fakepkg.model", "fakepkg.train"]
    assert keys.code_modules("fakepkg") == ["fakepkg", "fakepkg.model", "fakepkg.plots", "fakepkg.train"]
    from asd_utils.methods.pipeline import training_run_dir

    def run_dir():
        return training_run_dir(tmp_path / "cache", "AE", cfg={"epochs": 1}, seed=0, classes=["a"],
                                waves=np.zeros((2, 8)), labels=np.zeros(2), code="fakepkg.train")

    key, folder = keys.cache_key({"seed": 0}, code="fakepkg.train"), run_dir()
    assert keys.cache_key({"seed": 0}, code="fakepkg.train") == key and run_dir() == folder
    assert keys.cache_key({"seed": 1}, code="fakepkg.train") != key
    (pkg / "plots.py").write_text("COLOUR = 'blue'\n")  # code the result does not depend on
    assert keys.cache_key({"seed": 0}, code="fakepkg.train") == key and run_dir() == folder
    (pkg / "model.py").write_text("WIDTH = 4\n")  # a module the trainer imports, inside a function
    os.utime(pkg / "model.py", ns=(10**18, 10**18))
    assert keys.cache_key({"seed": 0}, code="fakepkg.train") != key and run_dir() != folder
    assert run_dir().parent == folder.parent and run_dir().name.startswith("AE_")
    # the package's own modules: a changed trainer changes the key of an AE model
    ae = keys.code_modules("asd_utils.methods.baseline_ae")
    assert {"asd_utils.methods.baseline_ae", "asd_utils.training.trainer", "asd_utils.features.logmel"} <= set(ae)
    assert "asd_utils.notebook.explorer" not in ae and "asd_utils.run.runner" not in ae


def test_cache_key_refuses_absolute_paths(tmp_path):
    with pytest.raises(ValueError, match=r"absolute path \(cfg.files\[1\] = '/data/x.wav'\)"):
        keys.cache_key({"cfg": {"files": ["x.wav", "/data/x.wav"]}}, code="asd_utils.storage.keys")
    with pytest.raises(ValueError, match="absolute path"):
        keys.cache_key({"root": tmp_path}, code="asd_utils.storage.keys")
    # relative paths, units with a slash and plain strings are fine
    keys.cache_key({"file": "ToyCar/train/a.wav", "unit": "m/s", "x": "/"}, code="asd_utils.storage.keys")


_CHILD = """
import sys
from pathlib import Path
from filelock import FileLock, Timeout
from asd_utils.storage.atomic import file_lock
lock, log = Path(sys.argv[1]), Path(sys.argv[2])
try:  # a probe that does not wait: is the lock free right now?
    with FileLock(lock, timeout=0):
        print("free", flush=True)
except Timeout:
    print("busy", flush=True)
with file_lock(lock):
    with open(log, "a") as handle:
        handle.write("child\\n")
"""


def test_file_lock_serialises_processes(tmp_path):
    """While this process holds ``file_lock``, a second process finds it busy and writes only after release."""
    lock, log = tmp_path / "sub" / ".cache.lock", tmp_path / "log.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with atomic.file_lock(lock):
        assert lock.exists()  # made, with its folder
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(lock), str(log)], stdout=subprocess.PIPE,
                                 text=True, env=env)
        assert child.stdout.readline().strip() == "busy"
        log.write_text("parent\n")
    assert child.wait() == 0
    assert log.read_text().splitlines() == ["parent", "child"]
    # once released, the probe finds the lock free
    out = subprocess.run([sys.executable, "-c", _CHILD, str(lock), str(log)], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.strip() == "free"


def test_file_lock_serialises_threads(tmp_path):
    """Four threads each add 1 to a counter file 25 times, read-modify-write under the lock: no update is lost."""
    lock, counter = tmp_path / ".counter.lock", tmp_path / "counter.txt"
    counter.write_text("0")

    def work():
        for _ in range(25):
            with atomic.file_lock(lock):
                value = int(counter.read_text())
                counter.write_text(str(value + 1))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.read_text() == "100"
