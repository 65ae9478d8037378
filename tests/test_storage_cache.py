"""The one array cache and training-run folder (``asd_utils.storage.cache``)."""

import os

import numpy as np
import pytest

from asd_utils.storage import cache
from asd_utils.storage.keys import array_digest, cache_key

CODE = "asd_utils.storage.cache"


class Counter:
    """``compute`` for :func:`cache.cached_arrays` that counts its calls and returns
    ``{"x": [[calls, 1], [2, 3]] float32, "n": calls int64}``."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return {"x": np.array([[self.calls, 1], [2, 3]], dtype=np.float32), "n": np.int64(self.calls)}


def test_a_second_call_loads_the_stored_arrays_without_computing(tmp_path):
    compute = Counter()
    first = cache.cached_arrays(tmp_path, {"seed": 0}, compute, code=CODE, name="emb")
    again = cache.cached_arrays(tmp_path, {"seed": 0}, compute, code=CODE, name="emb")
    assert compute.calls == 1
    np.testing.assert_array_equal(first["x"], [[1, 1], [2, 3]])
    np.testing.assert_array_equal(again["x"], [[1, 1], [2, 3]])
    assert again["x"].dtype == np.float32 and int(again["n"]) == 1
    files = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert files == [f"emb_{cache_key({'seed': 0}, code=CODE)}.npz"]


def test_a_changed_ingredient_or_code_computes_again(tmp_path):
    compute = Counter()
    cache.cached_arrays(tmp_path, {"seed": 0}, compute, code=CODE)
    cache.cached_arrays(tmp_path, {"seed": 1}, compute, code=CODE)
    assert compute.calls == 2
    cache.cached_arrays(tmp_path, {"seed": 0}, compute, code="asd_utils.storage.atomic")
    assert compute.calls == 3
    other = cache.cached_arrays(tmp_path, {"seed": 0}, compute, code=CODE, name="other")  # another name
    assert compute.calls == 4 and int(other["n"]) == 4
    assert int(cache.cached_arrays(tmp_path, {"seed": 1}, compute, code=CODE)["n"]) == 2  # still stored
    assert len(list(tmp_path.glob("*.npz"))) == 4


def test_an_exception_in_compute_leaves_no_file_and_a_retry_computes(tmp_path):
    def fails():
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        cache.cached_arrays(tmp_path, {"seed": 0}, fails, code=CODE)
    assert not list(tmp_path.glob("*.npz")) and not list(tmp_path.glob("*.tmp"))
    compute = Counter()
    cache.cached_arrays(tmp_path, {"seed": 0}, compute, code=CODE)
    assert compute.calls == 1


def test_a_write_that_fails_leaves_no_partial_file(tmp_path, monkeypatch):
    """The arrays go to a temporary sibling that is moved into place: a failure at the move leaves
    neither the cache file nor the temporary one, and the next call computes again."""
    def broken_replace(src, dst):
        assert os.path.getsize(src) > 0  # the temporary file was written in full
        raise OSError("disk full")

    compute = Counter()
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        cache.cached_arrays(tmp_path, {"seed": 0}, compute, code=CODE)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()
    cache.cached_arrays(tmp_path, {"seed": 0}, compute, code=CODE)
    assert compute.calls == 2 and len(list(tmp_path.glob("*.npz"))) == 1


def test_an_unreadable_file_is_recomputed_and_overwritten(tmp_path):
    path = cache.cache_file(tmp_path, {"seed": 0}, code=CODE)
    path.write_bytes(b"not a zip")
    assert cache.load_arrays(path) is None
    compute = Counter()
    out = cache.cached_arrays(tmp_path, {"seed": 0}, compute, code=CODE)
    assert compute.calls == 1 and int(cache.load_arrays(path)["n"]) == 1 and int(out["n"]) == 1


def test_without_a_folder_it_computes_every_time_and_writes_nothing(tmp_path):
    compute = Counter()
    cache.cached_arrays(None, {"seed": 0}, compute, code=CODE)
    out = cache.cached_arrays(None, {"seed": 0}, compute, code=CODE)
    assert compute.calls == 2 and int(out["n"]) == 2


def test_save_false_computes_and_writes_nothing(tmp_path):
    compute = Counter()
    cache.cached_arrays(tmp_path, {"seed": 0}, compute, code=CODE, save=False, lock=False)
    assert compute.calls == 1 and not list(tmp_path.iterdir())


def test_an_absolute_path_in_the_ingredients_is_refused(tmp_path):
    compute = Counter()
    with pytest.raises(ValueError, match="absolute path"):
        cache.cached_arrays(tmp_path, {"clips": [str(tmp_path / "a.wav")]}, compute, code=CODE)
    with pytest.raises(ValueError, match="absolute path"):
        cache.run_dir(tmp_path, "sys", {"root": tmp_path}, code=CODE)
    assert compute.calls == 0


def test_the_lock_file_is_held_while_computing(tmp_path):
    """compute runs inside ``folder/.<file>.lock`` (an exclusive flock: a second process waits)."""
    fcntl = pytest.importorskip("fcntl")
    lock = cache.cache_file(tmp_path, {"seed": 0}, code=CODE)
    lock = lock.with_name(f".{lock.name}.lock")
    seen = []

    def compute():
        with open(lock) as handle:  # another open file description: flock must fail while held
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append("free")
            except BlockingIOError:
                seen.append("held")
        return {"x": np.zeros(1)}

    cache.cached_arrays(tmp_path, {"seed": 0}, compute, code=CODE)
    assert seen == ["held"]


def test_run_dir_names_the_folder_by_system_and_key(tmp_path):
    folder = cache.run_dir(tmp_path, "EAT-FFT train", {"seed": 0}, code=CODE)
    assert folder == tmp_path / f"EAT-FFT_train_{cache_key({'seed': 0}, code=CODE)}"
    assert not folder.exists()  # named, not created
    assert cache.run_dir(tmp_path, "EAT-FFT train", {"seed": 1}, code=CODE) != folder
    assert cache.run_dir(None, "x", {"seed": 0}, code=CODE) is None


def test_array_digest_names_shape_dtype_and_bytes():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    digest = array_digest(a)
    assert digest.startswith("(2, 3):float32:") and len(digest.split(":")[-1]) == 64
    assert array_digest(a.T.copy()) != digest  # other shape
    assert array_digest(a.astype(np.float64)) != digest  # other dtype
    assert array_digest(np.asfortranarray(a)) == digest  # same values in C order
    b = a.copy()
    b[0, 0] = 0.5
    assert array_digest(b) != digest
    assert os.sep not in digest
