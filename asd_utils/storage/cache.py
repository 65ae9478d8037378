"""The one array cache and the one training-run folder of the package.

:func:`cached_arrays` is the cache of every embedding (and any other set of arrays) that a method
computes: ``folder/<name>_<key>.npz``, the key from :func:`asd_utils.storage.keys.cache_key` of
what determines the arrays (config, data content, seed, model identity) and of the code that
computes them. A present file is loaded; otherwise the arrays are computed under a cross-process
file lock (:func:`asd_utils.storage.atomic.file_lock`) and written atomically
(:func:`asd_utils.storage.atomic.atomic_save_npz`), so an interrupted or failed computation never
leaves a file that a later run trusts, and two processes never compute the same entry at once.
:func:`cache_file`, :func:`load_arrays` and :func:`save_arrays` are its three steps, for a caller
that computes several entries in one pass (e.g. every snapshot of a run at once).

:func:`run_dir` names the folder of one training run (checkpoints, histories, the run's cached
embeddings) the same way: ``cache_root/<system>_<key>``.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asd_utils.storage.atomic import atomic_save_npz, file_lock
from asd_utils.storage.keys import cache_key

__all__ = ["cache_file", "cached_arrays", "load_arrays", "run_dir", "safe_name", "save_arrays"]


def safe_name(name: str) -> str:
    """``name`` with every character other than a letter, a digit, ``-`` or ``_`` replaced by ``_``
    (``"EAT-FFT train"`` -> ``"EAT-FFT_train"``): a file-name prefix."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name))


def run_dir(cache_root: str | os.PathLike | None, system: str, ingredients: Any, *,
            code: str | Sequence[str]) -> Path | None:
    """Folder of one training run: ``cache_root/<safe_name(system)>_<key>`` (not created).

    ingredients: JSON-serialisable description of everything that determines the run (config,
    seed, classes, training-data content, backbone identity; no absolute path, see
    :func:`asd_utils.storage.keys.cache_key`); code: the module(s) that train, e.g. ``__name__``.
    Any change of ingredients or code gives another folder, so a finished run found there is the
    run these inputs would train. Returns None when ``cache_root`` is None (no caching).
    """
    if cache_root is None:
        return None
    return Path(cache_root) / f"{safe_name(system)}_{cache_key(ingredients, code=code)}"


def cache_file(folder: str | os.PathLike, ingredients: Any, *, code: str | Sequence[str],
               name: str = "arrays") -> Path:
    """``folder/<safe_name(name)>_<cache_key(ingredients, code=code)>.npz``: where
    :func:`cached_arrays` keeps the arrays of these ingredients. Raises ``ValueError`` when the
    ingredients hold an absolute path."""
    return Path(folder) / f"{safe_name(name)}_{cache_key(ingredients, code=code)}.npz"


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """Every array of the ``.npz`` at ``path`` (``{name: array}``, dtypes and shapes as saved), or
    None when the file is missing or unreadable (then it is recomputed and overwritten)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, Any]) -> Path:
    """Write ``{name: array}`` to the ``.npz`` at ``path`` atomically (a temporary sibling moved
    into place); returns the path."""
    return atomic_save_npz(path, **{str(k): np.asarray(v) for k, v in arrays.items()})


def cached_arrays(folder: str | os.PathLike | None, ingredients: Any,
                  compute: Callable[[], Mapping[str, Any]], *, code: str | Sequence[str],
                  name: str = "arrays", save: bool = True, lock: bool = True) -> dict[str, np.ndarray]:
    """The arrays of ``compute()``, cached in ``folder`` under a key of ``ingredients`` and ``code``.

    folder: the cache folder (e.g. a :func:`run_dir`), or None: ``compute()`` is called and nothing
    is stored. ingredients: JSON-serialisable description of everything the arrays depend on
    (config, seed, data content such as :func:`asd_utils.storage.keys.files_digest` or
    :func:`asd_utils.storage.keys.array_digest`, model identity); an absolute path in it raises
    ``ValueError``. compute: ``() -> {name: array}`` (e.g. ``{"embeddings": (N, D) float32}``),
    called only on a miss. code: the module(s) that compute the arrays (e.g. ``__name__``): an
    edit of their source gives another key. name: file-name prefix (:func:`cache_file`).
    save: write the computed arrays (False on the non-writing processes of a distributed run);
    lock: hold ``folder/.<file>.lock`` while computing (False where the computation is collective
    over several processes, which must all enter it).

    Returns ``{name: np.ndarray}``: on a hit the arrays as stored; on a miss the computed ones
    (``np.asarray`` of each value, written unchanged, so both are the same numbers). An exception
    in ``compute`` leaves no file behind.
    """
    if folder is None:
        return _as_arrays(compute())
    path = cache_file(folder, ingredients, code=code, name=name)
    stored = load_arrays(path)
    if stored is not None:
        return stored
    guard = file_lock(path.with_name(f".{path.name}.lock")) if lock else contextlib.nullcontext()
    with guard:
        stored = load_arrays(path)  # another process may have written it while this one waited
        if stored is not None:
            return stored
        arrays = _as_arrays(compute())
        if save:
            save_arrays(path, arrays)
    return arrays


def _as_arrays(result: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not isinstance(result, Mapping):
        raise TypeError(f"compute must return a mapping of names to arrays, got {type(result).__name__}")
    return {str(k): np.asarray(v) for k, v in result.items()}
