"""The numbers the reports print, and how they line up against our reproductions.

Reported tables live in ``papers/<report>_table<N>.csv`` in one tidy layout::

    table,system,machine,metric,value

``metric`` is one of ``auc_source``, ``auc_target``, ``pauc`` (and ``hmean`` where a report
prints an official score); ``value`` is in percent as printed; ``machine`` is a DCASE machine
name or ``All``/``Total`` for the report's summary rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from asd_utils import paths

REPORTED_COLUMNS = ["table", "system", "machine", "metric", "value"]
METRICS = ("auc_source", "auc_target", "pauc", "hmean")
SUMMARY_MACHINES = {"all", "total", "hmean"}


def papers_dir() -> Path:
    """The ``papers/`` folder of the compendium."""
    return paths.project_root() / "papers"


def load_reported(path: str | Path) -> pd.DataFrame:
    """Read a reported-table CSV; ``path`` may be a bare file name inside ``papers/``.

    Raises ``ValueError`` naming the file when columns or metric names are wrong.
    """
    path = Path(path)
    if not path.exists() and not path.is_absolute():
        path = papers_dir() / path
    frame = pd.read_csv(path)
    missing = [c for c in REPORTED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {REPORTED_COLUMNS}")
    bad = sorted(set(frame["metric"]) - set(METRICS))
    if bad:
        raise ValueError(f"{path}: unknown metrics {bad}; expected {METRICS}")
    frame["value"] = frame["value"].astype(float)
    return frame[REPORTED_COLUMNS]


def _harmonic(values: np.ndarray) -> float:
    values = np.maximum(np.asarray(values, dtype=float), np.finfo(float).eps)
    return float(len(values) / np.sum(1.0 / values))


def reproduced_long(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per-machine tidy results (fractions) -> long rows (system, machine, metric, value %),
    plus a ``Total`` row per system and metric: the harmonic mean over machines/sections."""
    rows = []
    for system, group in tidy.groupby("system", sort=False):
        per_machine = group.groupby("machine", sort=True)[["auc_source", "auc_target", "pauc"]].apply(
            lambda g: g.apply(_harmonic)
        )
        for machine, values in per_machine.iterrows():
            for metric in ("auc_source", "auc_target", "pauc"):
                rows.append((system, machine, metric, 100 * values[metric]))
        for metric in ("auc_source", "auc_target", "pauc"):
            rows.append((system, "Total", metric, 100 * _harmonic(group[metric])))
        rows.append(
            (system, "Total", "hmean", 100 * _harmonic(group[["auc_source", "auc_target", "pauc"]].to_numpy().ravel()))
        )
    return pd.DataFrame(rows, columns=["system", "machine", "metric", "value"])


def side_by_side(reproduced: pd.DataFrame, reported: pd.DataFrame, system_map: dict[str, str]) -> pd.DataFrame:
    """Join our results and a report's table.

    reproduced: tidy per-machine results (``results.write_results`` layout, fractions).
    reported: :func:`load_reported` output. system_map: our system name -> the report's name.
    Returns columns system, reported_system, machine, metric, reproduced, reported (percent);
    machines missing on one side get NaN on that side (synthetic data has the same DCASE machine
    names; real eval data or unseen types simply show NaN under 'reported').
    """
    ours = reproduced_long(reproduced[reproduced["system"].isin(system_map)])
    ours["reported_system"] = ours["system"].map(system_map)
    theirs = reported.copy()
    theirs["machine_key"] = theirs["machine"].str.lower().replace({m: "total" for m in SUMMARY_MACHINES})
    ours["machine_key"] = ours["machine"].str.lower()
    merged = ours.merge(
        theirs.rename(columns={"system": "reported_system", "value": "reported"})[
            ["reported_system", "machine_key", "metric", "reported"]
        ],
        on=["reported_system", "machine_key", "metric"],
        how="left",
    )
    merged = merged.rename(columns={"value": "reproduced"})
    return merged[["system", "reported_system", "machine", "metric", "reproduced", "reported"]]


def report_id(path: str | Path) -> str | None:
    """The report id of a reported-table file: the three-digit prefix of ``<id>_<name>.csv``
    (``000_gisp_heu_table1.csv`` -> ``"000"``), None for other files (e.g. compiled copies)."""
    head = Path(path).name.split("_", 1)[0]
    return head if len(head) == 3 and head.isdigit() else None


def load_all_reported(folder: str | Path | None = None) -> pd.DataFrame:
    """Every report's own tables: the ``papers/<id>_*.csv`` files, concatenated.

    Returns columns ``report, table, system, machine, metric, value`` (percent as printed).
    Files without a three-digit report prefix (``baseline_ae_reported.csv``, a compilation of
    rows also present in the reports' own tables) are skipped, so no row is counted twice.
    """
    folder = Path(folder) if folder is not None else papers_dir()
    frames = []
    for path in sorted(folder.glob("*.csv")):
        rid = report_id(path)
        if rid is not None:
            frames.append(load_reported(path).assign(report=rid))
    if not frames:
        return pd.DataFrame(columns=["report", *REPORTED_COLUMNS])
    return pd.concat(frames, ignore_index=True)[["report", *REPORTED_COLUMNS]]


def long_comparison(tidy: pd.DataFrame, mapping: pd.DataFrame, reported: pd.DataFrame) -> pd.DataFrame:
    """Reported vs reproduced for every report at once, one row per value.

    tidy: collected per-machine results (``notebook, system, machine, section, ...``, fractions);
    mapping: ``notebook, system, report, reported_system`` (``asd_utils.notebook.catalogue.reported_mapping``);
    reported: :func:`load_all_reported` output.

    Returns ``report, table, notebook, system, reported_system, machine, metric, reported,
    reproduced`` (percent): every value a report prints for a mapped system, with ours beside it
    (NaN where we have no such machine type), plus our ``Total`` rows. Systems of one notebook are
    matched within that notebook, so equal names in two notebooks never mix.
    """
    columns = ["report", "table", "notebook", "system", "reported_system", "machine", "metric", "reported",
               "reproduced"]
    frames = []
    for (notebook, report), pairs in mapping.groupby(["notebook", "report"], sort=False):
        ours = tidy[(tidy["notebook"].astype(str).str.split("_").str[0] == str(notebook).split("_")[0])
                    & tidy["system"].isin(pairs["system"])]
        theirs = reported[reported["report"] == report]
        if ours.empty or theirs.empty:
            continue
        for table, quoted in theirs.groupby("table", sort=False):
            system_map = {s: r for s, r in zip(pairs["system"], pairs["reported_system"])
                          if r in set(quoted["system"])}
            if not system_map:
                continue
            side = side_by_side(ours, quoted, system_map)
            side = side.assign(report=report, table=table, notebook=ours["notebook"].iloc[0])
            frames.append(side)
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def unmapped_reported(reported: pd.DataFrame, mapping: pd.DataFrame) -> pd.DataFrame:
    """The systems a report prints that no system of ours is mapped to: ``report, table, system``
    (e.g. a report's system whose notebook has not run yet, or a name the catalogue lacks)."""
    mapped = set(zip(mapping["report"], mapping["reported_system"]))
    rows = reported[["report", "table", "system"]].drop_duplicates()
    keep = [(r, s) not in mapped for r, s in zip(rows["report"], rows["system"])]
    return rows[keep].reset_index(drop=True)
