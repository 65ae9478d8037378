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
