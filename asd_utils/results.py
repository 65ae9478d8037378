"""Tidy result CSVs per notebook, their collection, summaries and a dependency-free Markdown table.

Each notebook writes ``results/<profile>/<notebook>.csv`` with one row per system, machine type
and section: ``notebook, system, machine, section, auc_source, auc_target, pauc, hmean, note``
(metrics as fractions in [0, 1]). Rerunning a system replaces its rows, so reruns never
duplicate. Writes are atomic (:mod:`asd_utils.io_utils`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from asd_utils.io_utils import atomic_write_csv
from asd_utils.metrics import METRICS, hmean, official_score
from asd_utils.paths import results_dir as _results_dir

COLUMNS = ["notebook", "system", "machine", "section", *METRICS, "hmean", "note"]

__all__ = ["COLUMNS", "collect_results", "read_results", "summary_table", "to_markdown", "write_results"]


def _read_tidy(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(
        path,
        dtype={"section": str, "note": str, "notebook": str, "system": str, "machine": str},
        keep_default_na=False,
        na_values={m: ["", "nan", "NaN"] for m in (*METRICS, "hmean")},
    )
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a tidy results CSV; lacks columns {missing}")
    return frame[COLUMNS]


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read one tidy results CSV (columns :data:`COLUMNS`; ``section`` kept as a string)."""
    return _read_tidy(Path(path))


def write_results(
    table: pd.DataFrame,
    *,
    notebook: str,
    system: str,
    profile: str,
    results_dir: str | os.PathLike | None = None,
    note: str = "",
) -> Path:
    """Write (or replace) one system's rows in ``results/<profile>/<notebook>.csv``.

    table: per machine/section metrics, columns ``machine, section, auc_source, auc_target, pauc``
    (``hmean`` is computed when absent), as :func:`asd_utils.metrics.evaluate` returns.
    notebook: notebook name (file stem); system: system name; profile: ``smoke``/``default``/
    ``paper``; results_dir: folder to write into instead of ``asd_utils.paths.results_dir(profile)``;
    note: free text stored on every row (e.g. ``"untrained backbone"``).

    Rows of other systems are kept; rows of ``system`` are replaced. Returns the CSV path.
    """
    need = ["machine", "section", *METRICS]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"results table for {system!r} lacks columns {missing}; expected {need}")
    if len(table) == 0:
        raise ValueError(f"results table for {system!r} is empty")
    folder = Path(results_dir) if results_dir is not None else _results_dir(profile)
    path = folder / f"{notebook}.csv"
    rows = table[need].copy()
    rows["section"] = rows["section"].astype(str)
    rows["hmean"] = (
        table["hmean"].to_numpy(dtype=np.float64)
        if "hmean" in table.columns
        else [hmean(v) for v in rows[list(METRICS)].to_numpy(dtype=np.float64)]
    )
    rows.insert(0, "system", system)
    rows.insert(0, "notebook", notebook)
    rows["note"] = note
    rows = rows[COLUMNS]
    if path.exists():
        old = _read_tidy(path)
        rows = pd.concat([old[old["system"] != system], rows], ignore_index=True)
    atomic_write_csv(path, rows)
    return path


def collect_results(results_dir: str | os.PathLike) -> pd.DataFrame:
    """Concatenate every tidy results CSV directly under ``results_dir`` (sorted by file name).

    CSV files of another shape in that folder are skipped (submission files live in
    sub-folders). Returns a DataFrame with :data:`COLUMNS` (empty if none).
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder not found: {folder}")
    frames = []
    for path in sorted(folder.glob("*.csv")):
        header = pd.read_csv(path, nrows=0).columns
        if all(c in header for c in COLUMNS):
            frames.append(_read_tidy(path))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)


def summary_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (notebook, system), in order of appearance.

    Columns: ``notebook, system, auc_source, auc_target, pauc`` (each the harmonic mean over the
    system's machine types and sections, floored at epsilon as the evaluator does),
    ``official_score`` (harmonic mean of all three over all rows), ``n_rows``, ``note``.
    """
    cols = ["notebook", "system", *METRICS, "official_score", "n_rows", "note"]
    out = []
    for (nb, system), rows in tidy.groupby(["notebook", "system"], sort=False):
        notes = sorted({str(n) for n in rows.get("note", pd.Series([""])) if str(n) not in ("", "nan")})
        out.append(
            {
                "notebook": nb,
                "system": system,
                **{m: hmean(rows[m].to_numpy(dtype=np.float64)) for m in METRICS},
                "official_score": official_score(rows),
                "n_rows": len(rows),
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(out, columns=cols)


def _cell(value, floatfmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        return format(float(value), floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, *, floatfmt: str = ".4f", index: bool | None = None) -> str:
    """GitHub Markdown table of ``df`` (no ``tabulate`` needed).

    MultiIndex column labels are joined with `` / ``; the index is written as the first column(s)
    unless it is a default ``RangeIndex`` (or ``index`` says otherwise). Floats use ``floatfmt``;
    NaN is an empty cell; numeric columns are right-aligned.
    """
    frame = df
    if index is None:
        index = not isinstance(frame.index, pd.RangeIndex)
    if index:
        names = [n if n is not None else "" for n in frame.index.names]
        frame = frame.reset_index()
        if isinstance(frame.columns, pd.MultiIndex):
            frame.columns = [(names[i],) if i < len(names) else c for i, c in enumerate(frame.columns)]
    labels = []
    for c in frame.columns:
        parts = c if isinstance(c, tuple) else (c,)
        labels.append(" / ".join(str(p) for p in parts if str(p) != ""))
    body = [[_cell(v, floatfmt) for v in row] for row in frame.itertuples(index=False, name=None)]
    numeric = [pd.api.types.is_numeric_dtype(frame.iloc[:, j]) for j in range(frame.shape[1])]
    widths = [max([len(labels[j]), 3, *(len(r[j]) for r in body)]) for j in range(len(labels))]

    def line(cells):
        return (
            "| "
            + " | ".join((c.rjust(w) if num else c.ljust(w)) for c, w, num in zip(cells, widths, numeric))
            + " |"
        )

    rule = (
        "| " + " | ".join(("-" * (w - 1) + ":") if num else "-" * w for w, num in zip(widths, numeric)) + " |"
    )
    return "\n".join([line(labels), rule, *(line(r) for r in body)]) + "\n"
