"""The small tables every method notebook builds from its recorded systems.

- :func:`tidy_table`: per-system result tables (``metrics.evaluate`` output) stacked into one tidy
  table with a ``system`` column, in a chosen order;
- :func:`baseline_rows`: the official autoencoder's rows that notebook 01 recorded for the same
  profile (the baseline columns of the reports' tables);
- :func:`reported_pivot`: a ``reported.side_by_side`` table as the notebooks show it, one row per
  machine type and metric, reproduced and reported numbers per system side by side.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from asd_utils.evaluation.metrics import METRICS
from asd_utils.evaluation.results import COLUMNS, read_results

__all__ = ["AE_NOTEBOOK", "AE_SYSTEMS", "baseline_rows", "reported_pivot", "tidy_table"]

AE_NOTEBOOK = "01_baseline_autoencoder"  # the notebook that records the official baseline
AE_SYSTEMS = ("AE-MSE", "AE-MAHALA")     # its systems, as the reports' tables name them


def tidy_table(tables: Mapping[str, pd.DataFrame], systems: Sequence[str] | None = None) -> pd.DataFrame:
    """One tidy table of several systems: each system's table (rows per machine type and section,
    columns ``machine, section, auc_source, auc_target, pauc, hmean`` as ``metrics.evaluate``
    returns) with a ``system`` column added, stacked in the order of ``systems`` (default: the
    order of ``tables``); the index runs 0..n-1. A name of ``systems`` missing from ``tables`` is
    a ``KeyError``. No table: an empty frame with the columns ``machine, section, <metrics>,
    hmean, system``."""

    names = list(tables) if systems is None else list(systems)
    missing = [name for name in names if name not in tables]
    if missing:
        raise KeyError(f"no recorded table for {missing}; recorded: {list(tables)}")
    if not names:
        return pd.DataFrame(columns=["machine", "section", *METRICS, "hmean", "system"])
    return pd.concat([tables[name].assign(system=name) for name in names], ignore_index=True)


def baseline_rows(results_dir: str | os.PathLike, systems: Sequence[str] = AE_SYSTEMS) -> pd.DataFrame:
    """The rows of ``systems`` that notebook 01 (:data:`AE_NOTEBOOK`) recorded in
    ``results_dir/01_baseline_autoencoder.csv`` (tidy layout, ``results.COLUMNS``), in the file's
    order. An empty frame with those columns when the file does not exist (notebook 01 has not run
    for this profile / output folder) or holds none of ``systems``."""

    path = Path(results_dir) / f"{AE_NOTEBOOK}.csv"
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    rows = read_results(path)
    return rows[rows["system"].isin(list(systems))].reset_index(drop=True)


def reported_pivot(side: pd.DataFrame, *, columns: str = "system", sort: bool = False) -> pd.DataFrame:
    """A ``reported.side_by_side`` table (long: ``system, reported_system, machine, metric,
    reproduced, reported``, percent) pivoted for display: index (machine, metric), columns
    (``reproduced`` / ``reported``) x ``columns`` (our ``system`` or the report's
    ``reported_system``), rounded to 2 decimals. ``sort=False`` keeps the machines and metrics in
    the order of ``side``; ``True`` sorts them."""

    return side.pivot_table(index=["machine", "metric"], columns=columns, values=["reproduced", "reported"],
                            sort=sort).round(2)
