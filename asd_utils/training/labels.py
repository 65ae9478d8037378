"""Auxiliary classification labels built from the data index (machine, section, attributes, domain)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SEPARATOR = "|"


def _data_error(message: str) -> ValueError:
    try:
        from asd_utils.data import DataError
    except ImportError:  # pragma: no cover - asd_utils.data is part of the package
        return ValueError(message)
    return DataError(message)


def build_class_labels(index: pd.DataFrame,
                       keys: Sequence[str] = ("machine", "section", "attributes", "domain"),
                       classes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
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

    Returns:
        ``(labels (N,) int64, classes list[str])`` with ``classes[labels[i]]`` the class of row i.
    """
    keys = list(keys)
    if not keys:
        raise ValueError("build_class_labels needs at least one key column")
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
