"""Two runs of the compendium on one DCASE 2026 root, side by side: one channel setting against another.

Run every notebook twice on the same two-channel root, e.g. ::

    python -m asd_utils.run.runner --profile smoke --data-root ROOT --output-dir runs/near --channel near
    python -m asd_utils.run.runner --profile smoke --data-root ROOT --output-dir runs/noise_aware --channel noise_aware

then :func:`channel_side_by_side` (``runs/near/results``, ``runs/noise_aware/results``) gives one row
per system with the official score of each run, their difference, and each run's bootstrap
interval. The channel of each folder is read from its result notes (``asd_utils.evaluation.results.note_channel``),
never assumed, and a folder whose notes state no channel or several is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from asd_utils.evaluation.results import bootstrap_intervals, collect_results, note_channel, summary_table

__all__ = ["folder_channel", "channel_side_by_side"]


def folder_channel(tidy: pd.DataFrame, where: str | os.PathLike = "results") -> str:
    """The one channel setting the result notes of ``tidy`` state; ``ValueError`` naming ``where``
    when they state none (mono data) or several (runs mixed in one folder)."""
    channels = {note_channel(n) for n in tidy["note"]}
    if channels == {None} or not channels:
        raise ValueError(f"{where}: the result notes state no channel; expected results of a run on a two-channel "
                         "DCASE 2026 root (python -m asd_utils.run.runner --data-root ROOT --channel ...)")
    if len(channels) != 1:
        named = sorted(str(c) for c in channels)
        raise ValueError(f"{where}: the result notes state several channels {named}; expected one run per folder "
                         "(give each run its own --output-dir)")
    return channels.pop()


def channel_side_by_side(first: str | os.PathLike, second: str | os.PathLike, *,
                         intervals: bool = True, n_resamples: int = 1000) -> pd.DataFrame:
    """Every system's official score under two channel settings.

    Args:
        first, second: results folders of two runs on the same root (tidy CSVs and ``submissions/``),
            e.g. the ``near`` run and the ``noise_aware`` run.
        intervals: add each run's 95 % bootstrap interval (:func:`asd_utils.evaluation.results.bootstrap_intervals`).

    Returns:
        One row per (notebook, system) found in either run, in order of appearance: ``notebook,
        system``, then for each run's channel ``c``: ``c`` (official score, fraction) and, with
        ``intervals``, ``c ci_low`` / ``c ci_high``; last ``difference`` (second minus first).
        NaN where a system ran in one folder only. The two runs must state different channels.
    """
    tables, names = [], []
    for folder in (first, second):
        tidy = collect_results(Path(folder))
        if len(tidy) == 0:
            raise ValueError(f"{folder}: no results; expected the results folder of a finished run")
        channel = folder_channel(tidy, folder)
        summary = summary_table(tidy, bootstrap_intervals(folder, tidy, n_resamples=n_resamples) if intervals else None)
        summary = summary.rename(columns={"official_score": channel, "ci_low": f"{channel} ci_low",
                                          "ci_high": f"{channel} ci_high"})
        bounds = [f"{channel} ci_low", f"{channel} ci_high"] if intervals else []
        summary = summary[["notebook", "system", channel, *bounds]]
        tables.append(summary)
        names.append(channel)
    if names[0] == names[1]:
        raise ValueError(f"{first} and {second} both state channel {names[0]!r}; expected two different settings")
    table = tables[0].merge(tables[1], on=["notebook", "system"], how="outer", sort=False)
    order = list(dict.fromkeys(key for t in tables for key in zip(t.notebook, t.system)))
    table = table.set_index(["notebook", "system"]).reindex(pd.MultiIndex.from_tuples(order,
                                                                                      names=["notebook", "system"]))
    table["difference"] = table[names[1]].to_numpy(dtype=np.float64) - table[names[0]].to_numpy(dtype=np.float64)
    return table.reset_index()
