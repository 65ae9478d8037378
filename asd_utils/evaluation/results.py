"""Tidy result CSVs per notebook, their collection, summaries and a dependency-free Markdown table.

Each notebook writes ``results/<profile>/<notebook>.csv`` with one row per system, machine type
and section: ``notebook, system, machine, section, auc_source, auc_target, pauc, hmean, note``
(metrics as fractions in [0, 1]). Rerunning a system replaces its rows, so reruns never
duplicate. Writes are atomic (:mod:`asd_utils.storage.keys`).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from asd_utils.evaluation.bootstrap import bootstrap_results_dir
from asd_utils.evaluation.metrics import METRICS, hmean, official_score
from asd_utils.paths import project_root
from asd_utils.paths import results_dir as _results_dir
from asd_utils.storage.atomic import atomic_write_csv

COLUMNS = ["notebook", "system", "machine", "section", *METRICS, "hmean", "note"]

__all__ = [
    "COLUMNS",
    "bootstrap_intervals",
    "caveat_legend",
    "caveat_marks",
    "collect_results",
    "intervals_table",
    "leaderboard",
    "missing_notebooks",
    "note_channel",
    "per_machine_hmean",
    "read_results",
    "summary_table",
    "to_markdown",
    "write_results",
]


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
    (``hmean`` is computed when absent), as :func:`asd_utils.evaluation.metrics.evaluate` returns.
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


def note_channel(note: str) -> str | None:
    """The channel setting a results ``note`` states (``"channel near of two-channel DCASE 2026
    clips"`` -> ``"near"``, see ``asd_utils.data.channel_note``), or None (mono data)."""

    found = re.search(r"\bchannel (\w+) of two-channel", str(note))
    return found.group(1) if found else None


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


def bootstrap_intervals(
    results_dir: str | os.PathLike,
    tidy: pd.DataFrame | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    test_index: pd.DataFrame | None = None,
    atol: float = 1e-6,
) -> pd.DataFrame:
    """Bootstrap interval of each system's official score from its per-clip submission files.

    results_dir: a results folder (tidy CSVs + ``submissions/``); tidy: its collected results
    (read when None); the rest as :func:`asd_utils.evaluation.bootstrap.bootstrap_official_score` (test clips
    resampled within each machine type/section and domain x label cell, all systems on the same
    resamples). test_index: ``discover`` output with the ground truth of blinded clips, if any.

    Returns ``notebook, system, ci_low, ci_high`` (fractions). A system gets an interval only when
    the official score recomputed from its submission files matches its results CSV within
    ``atol``, i.e. the interval is about the very clips the reported score was computed on; other
    systems (no submission files, clips missing, ground truth the clip names do not carry) get NaN.
    """

    columns = ["notebook", "system", "ci_low", "ci_high"]
    if tidy is None:
        tidy = collect_results(results_dir)
    if len(tidy) == 0:
        return pd.DataFrame(columns=columns)
    result = bootstrap_results_dir(
        results_dir, tidy, test_index=test_index, n_resamples=n_resamples, seed=seed, confidence=confidence
    )
    return intervals_table(result, tidy, atol=atol)


def intervals_table(result, tidy: pd.DataFrame, *, atol: float = 1e-6) -> pd.DataFrame:
    """``notebook, system, ci_low, ci_high`` of a :class:`asd_utils.evaluation.bootstrap.BootstrapResult`
    whose systems are keyed ``(notebook, system)``, keeping only systems whose recomputed official
    score matches ``tidy`` within ``atol`` (see :func:`bootstrap_intervals`)."""
    columns = ["notebook", "system", "ci_low", "ci_high"]
    official = {
        (str(nb), str(system)): official_score(rows)
        for (nb, system), rows in tidy.groupby(["notebook", "system"], sort=False)
    }
    rows = []
    for key, row in zip(result.systems, result.intervals().itertuples(index=False)):
        if key in official and abs(official[key] - row.official_score) <= atol:
            rows.append({"notebook": key[0], "system": key[1], "ci_low": row.ci_low, "ci_high": row.ci_high})
    return pd.DataFrame(rows, columns=columns)


def summary_table(tidy: pd.DataFrame, intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (notebook, system), in order of appearance.

    Columns: ``notebook, system, auc_source, auc_target, pauc`` (each the harmonic mean over the
    system's machine types and sections, floored at epsilon as the evaluator does),
    ``official_score`` (harmonic mean of all three over all rows), ``n_rows``, ``note``.
    intervals: :func:`bootstrap_intervals` output; when given, ``ci_low`` and ``ci_high`` (the
    bootstrap interval of the official score; empty where a system has none) follow
    ``official_score``.
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
    summary = pd.DataFrame(out, columns=cols)
    if intervals is None:
        return summary
    bounds = intervals.set_index(["notebook", "system"])[["ci_low", "ci_high"]]
    key = pd.MultiIndex.from_arrays([summary["notebook"].astype(str), summary["system"].astype(str)])
    position = cols.index("official_score") + 1
    for offset, column in enumerate(("ci_low", "ci_high")):
        values = bounds[column].reindex(key).to_numpy(dtype=np.float64) if len(bounds) else np.nan
        summary.insert(position + offset, column, values)
    return summary


# phrase in a results note -> (mark, what the mark means)
CAVEATS = {
    "synthetic data": ("*", "synthetic data"),
    "untrained stand-in": ("†", "untrained stand-in backbone"),
    "stand-in pretrained by the compendium": ("‡", "stand-in backbone pretrained by the compendium on synthetic audio"),
}


def caveat_marks(note: str) -> str:
    """Marks for the caveats a results ``note`` carries: ``*`` synthetic data, ``†`` untrained
    stand-in backbone, ``‡`` stand-in backbone pretrained by the compendium (``""`` for real data
    and published checkpoints). Used in tables and figure labels."""
    text = str(note)
    return "".join(mark for phrase, (mark, _) in CAVEATS.items() if phrase in text)


def caveat_legend(notes) -> str:
    """``"* synthetic data, † untrained stand-in backbone"``: the marks that occur in ``notes``
    (an iterable of results notes) with their meaning; ``""`` when none occurs."""
    present = "".join(caveat_marks(n) for n in notes)
    return ", ".join(f"{mark} {meaning}" for mark, meaning in CAVEATS.values() if mark in present)


def leaderboard(tidy: pd.DataFrame, intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every system of every notebook, best official score first.

    Columns: ``rank`` (1 = best official score; ties share the better rank), ``notebook, system,
    official_score`` (+ ``ci_low, ci_high`` with ``intervals``), ``auc_source, auc_target, pauc``,
    ``caveat`` (:func:`caveat_marks` of the note), ``note``. Fractions.
    """
    summary = summary_table(tidy, intervals)
    summary.insert(0, "rank", summary["official_score"].rank(ascending=False, method="min").astype(int))
    summary["caveat"] = summary["note"].map(caveat_marks)
    front = ["rank", "notebook", "system", "official_score"]
    if intervals is not None:
        front += ["ci_low", "ci_high"]
    columns = [*front, *METRICS, "caveat", "note"]
    return summary.sort_values(["rank", "notebook"], kind="mergesort")[columns].reset_index(drop=True)


def per_machine_hmean(tidy: pd.DataFrame) -> pd.DataFrame:
    """Harmonic mean of AUC-s, AUC-t and pAUC per system (rows, ``(notebook, system)``) and machine
    type (columns): over all sections of the machine type, epsilon floor. NaN where a system has no
    result for a machine type."""
    values = {}
    for (nb, system, machine), rows in tidy.groupby(["notebook", "system", "machine"], sort=False):
        values[(nb, system, machine)] = hmean(rows[list(METRICS)].to_numpy(dtype=np.float64))
    if not values:
        return pd.DataFrame()
    series = pd.Series(values)
    series.index.names = ["notebook", "system", "machine"]
    table = series.unstack("machine")
    order = list(dict.fromkeys(zip(tidy["notebook"], tidy["system"])))
    return table.reindex(pd.MultiIndex.from_tuples(order, names=["notebook", "system"]))[
        sorted(tidy["machine"].unique())
    ]


def missing_notebooks(tidy: pd.DataFrame, notebook_folder: str | os.PathLike | None = None,
                      *, exclude: tuple[str, ...] = ()) -> list[str]:
    """Numbered notebooks that record results (their code calls ``ctx.record`` or
    ``write_results``) but have no rows in ``tidy``: the ones that have not run for this profile /
    output folder. ``exclude``: notebook stems to skip (e.g. the calling notebook)."""


    folder = Path(notebook_folder) if notebook_folder is not None else project_root() / "notebooks"
    ran = {str(n) for n in tidy["notebook"].unique()} if len(tidy) else set()
    missing = []
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        if path.stem in exclude or path.stem in ran:
            continue
        cells = json.loads(path.read_text()).get("cells", [])
        source = "".join("".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code")
        if ".record(" in source or "write_results(" in source:
            missing.append(path.stem)
    return missing


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
