"""Auxiliary classification labels built from the data index (machine, section, attributes, domain)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from asd_utils.data.errors import DataError

SEPARATOR = "|"


def _data_error(message: str) -> ValueError:
    return DataError(message)


def build_class_labels(index: pd.DataFrame,
                       keys: Sequence[str] = ("machine", "section", "attributes", "domain"),
                       classes: Sequence[str] | None = None, *,
                       root_column: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Integer class labels for the auxiliary classification task.

    A class is one distinct combination of the ``keys`` columns of ``index`` (a data index from
    ``asd_utils.data.discover``); its name joins the values with ``"|"``, e.g.
    ``"fan|00|m-n_W_vol_1|source"``. ``attributes`` is the raw string from the file name, so a
    machine with hidden attributes (``noAttribute``) forms one class per machine/section (and
    domain, when ``domain`` is a key). Missing values (``None``/NaN) become ``"unknown"``.

    Args:
        index: one row per clip.
        keys: columns that define a class.
        classes: an existing class list (e.g. from the training set) to encode against; a
            combination not in it raises. None builds the list: sorted, so the encoding does not
            depend on row order.
        root_column: a column naming the dataset root of each clip (see :func:`pool_roots`).
            When given, it leads every class name (``"dcase2024|slider|00|noAttribute|source"``),
            so clips of different roots (DCASE years) never share a class even where machine,
            section, attributes and domain coincide. None (the default) leaves names as above.

    Returns:
        ``(labels (N,) int64, classes list[str])`` with ``classes[labels[i]]`` the class of row i.
    """
    keys = list(keys)
    if not keys:
        raise ValueError("build_class_labels needs at least one key column")
    if root_column is not None:
        if root_column in keys:
            raise ValueError(f"root_column {root_column!r} is already one of the keys {keys}")
        keys = [root_column, *keys]
    missing = [k for k in keys if k not in index.columns]
    if missing:
        raise _data_error(f"data index lacks column(s) {missing} needed for class labels; "
                          f"it has {list(index.columns)}")
    parts = [index[k].map(lambda v: "unknown" if v is None or (isinstance(v, float) and np.isnan(v))
                          else str(v)) for k in keys]
    names = parts[0].astype(str)
    for part in parts[1:]:
        names = names + SEPARATOR + part.astype(str)
    names_list = names.tolist()
    if classes is None:
        classes = sorted(set(names_list))
    else:
        classes = list(classes)
    lookup = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(names_list) - set(lookup))
    if unknown:
        raise _data_error(f"{len(unknown)} class(es) not in the given class list, e.g. {unknown[:3]}")
    labels = np.fromiter((lookup[n] for n in names_list), dtype=np.int64, count=len(names_list))
    return labels, list(classes)


ROOT_COLUMN = "data_root"


def pool_roots(frames: Sequence[tuple[str, pd.DataFrame]], column: str = ROOT_COLUMN) -> pd.DataFrame:
    """Concatenate data indices of several dataset roots, naming each row's root in ``column``.

    frames: ``(root name, index)`` pairs, e.g. ``[("main", dcase2025), ("dcase2024", ...)]``;
    names must be distinct and non-empty (they become the first part of class names with
    ``build_class_labels(..., root_column=column)``). Rows keep their order; the result has a
    fresh 0..N-1 index.
    """
    names = [str(name) for name, _ in frames]
    if not frames:
        raise ValueError("pool_roots needs at least one (name, index) pair")
    if any(not name or SEPARATOR in name for name in names):
        raise ValueError(f"root names must be non-empty and free of {SEPARATOR!r}; got {names}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"root names must be distinct; repeated: {duplicates}")
    return pd.concat([frame.assign(**{column: name}) for name, frame in frames], ignore_index=True)
