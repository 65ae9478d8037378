"""Which system hears which fault: AUC per fault kind, from the synthetic dataset's hidden truths.

Only a dataset with known faults can say this; ``synth_metadata.csv`` records every anomalous
clip's fault kind (``anomaly_kind``). Definition, per system, machine type, section and fault
kind ``k``:

    AUC_k = ROC AUC of the scores of the anomalous test clips of kind ``k`` against the scores of
            all normal test clips of the same machine type and section.

Domains: with ``domain="pooled"`` (default) both the kind-``k`` anomalies and the normals are
taken from the source and the target domain together, like the DCASE AUC over all clips; with
``domain="source"`` or ``"target"`` both groups come from that domain only. Ties count one half
(Mann-Whitney). Scores are read from the DCASE submission files every notebook writes
(:func:`asd_utils.evaluation.bootstrap.read_clip_scores`), so nothing is recomputed and no score changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from asd_utils.evaluation.bootstrap import read_clip_scores
from asd_utils.evaluation.metrics import _rank_auc

DOMAIN_CHOICES = ("pooled", "source", "target")
COLUMNS = ["notebook", "system", "machine", "section", "fault_kind", "domain", "auc", "n_anomalies", "n_normals"]


def read_fault_truth(root: str | os.PathLike) -> pd.DataFrame:
    """The test clips' hidden truths of a synthetic root: ``machine, file_name, domain, label,
    fault_kind`` ("" for normal clips), ``severity``, ``snr_db``, from ``root/synth_metadata.csv``."""
    path = Path(root) / "synth_metadata.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no synth_metadata.csv; fault kinds are known only for a root written by "
                                "asd_utils.synth")
    meta = pd.read_csv(path, dtype={"anomaly_kind": str}, keep_default_na=False)
    needed = {"machine", "split", "file_name", "domain", "label", "anomaly_kind", "severity", "snr_db"}
    if not needed <= set(meta.columns):
        raise ValueError(f"{path}: expected the columns {sorted(needed)}, missing {sorted(needed - set(meta.columns))}")
    test = meta[meta["split"] == "test"].rename(columns={"anomaly_kind": "fault_kind"})
    bad = test[(test["label"] == "anomaly") & (test["fault_kind"] == "")]
    if len(bad):
        raise ValueError(f"{path}: anomalous test clip {bad['file_name'].iloc[0]} has no anomaly_kind")
    return test[["machine", "file_name", "domain", "label", "fault_kind", "severity", "snr_db"]].reset_index(drop=True)


def fault_kind_aucs(clip_scores: pd.DataFrame, truth: pd.DataFrame, *, domain: str = "pooled") -> pd.DataFrame:
    """AUC per fault kind (module docstring) for every system in ``clip_scores``.

    clip_scores: one row per scored clip with ``notebook, system, machine, section, file_name,
    score`` (as :func:`asd_utils.evaluation.bootstrap.read_clip_scores` returns). truth: as
    :func:`read_fault_truth` returns. Every scored clip must be in ``truth``.
    Returns the tidy table ``notebook, system, machine, section, fault_kind, domain, auc,
    n_anomalies, n_normals`` (``auc`` a fraction), sorted by notebook, system, machine, section, kind.
    """
    if domain not in DOMAIN_CHOICES:
        raise ValueError(f"domain must be one of {DOMAIN_CHOICES}, got {domain!r}")
    if clip_scores.empty:
        return pd.DataFrame(columns=COLUMNS)
    keyed = truth.set_index(["machine", "file_name"])[["domain", "label", "fault_kind"]]
    frame = clip_scores[["notebook", "system", "machine", "section", "file_name", "score"]].join(
        keyed, on=["machine", "file_name"])
    unknown = frame["label"].isna()
    if unknown.any():
        row = frame[unknown].iloc[0]
        raise ValueError(f"scored clip {row['machine']}/{row['file_name']} (system {row['system']}) is not a test "
                         "clip of the synthetic root's synth_metadata.csv: scores and root do not belong together")
    if not np.isfinite(frame["score"].to_numpy(dtype=float)).all():
        raise ValueError("scores must be finite")
    if domain != "pooled":
        frame = frame[frame["domain"] == domain]
    rows = []
    for (notebook, system, machine, section), group in frame.groupby(
            ["notebook", "system", "machine", "section"], sort=True):
        normal = group.loc[group["label"] == "normal", "score"].to_numpy(dtype=float)
        anomalous = group[group["label"] == "anomaly"]
        for kind, clips in anomalous.groupby("fault_kind", sort=True):
            scores = clips["score"].to_numpy(dtype=float)
            auc = _rank_auc(normal, scores) if len(normal) else float("nan")
            rows.append([notebook, system, machine, section, kind, domain, auc, len(scores), len(normal)])
    return pd.DataFrame(rows, columns=COLUMNS)


def run_fault_kind_aucs(results_dir: str | os.PathLike, root: str | os.PathLike, *, tidy: pd.DataFrame | None = None,
                        domain: str = "pooled") -> pd.DataFrame:
    """:func:`fault_kind_aucs` of every system with submission files under ``results_dir`` (a
    run's results folder), on the synthetic ``root`` the run used. ``tidy``: the collected results,
    to name the systems (:func:`asd_utils.evaluation.bootstrap.read_clip_scores`)."""
    return fault_kind_aucs(read_clip_scores(results_dir, tidy), read_fault_truth(root), domain=domain)


def fault_kind_table(aucs: pd.DataFrame) -> pd.DataFrame:
    """Systems x fault kinds: the mean over machine types and sections of the AUC (NaN-skipping).
    With the general fault kinds of the ``realistic`` variant every column spans every type; with
    the ``envelope`` variant's type-specific kinds, a column holds the types that have that kind."""
    if aucs.empty:
        return pd.DataFrame()
    table = aucs.pivot_table(index=["notebook", "system"], columns="fault_kind", values="auc", aggfunc="mean",
                             sort=False)
    table.columns.name = None
    return table


def fault_kind_heatmap(aucs: pd.DataFrame, *, title: str = "AUC per fault kind (mean over machine types)"):
    """Heat map of :func:`fault_kind_table`: systems (rows) x fault kinds (columns), AUC annotated,
    a diverging scale centred on 0.5 (chance). Returns the matplotlib Figure."""

    table = fault_kind_table(aucs)
    if table.empty:
        raise ValueError("no AUC per fault kind to plot (no submission files, or no anomalous clip)")
    labels = [f"{nb} {system}" for nb, system in table.index]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * table.shape[1], 0.8 + 0.45 * table.shape[0]))
    image = ax.imshow(table.to_numpy(dtype=float), cmap="RdBu_r", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(value - 0.5) > 0.3 else "black")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(table.shape[0]), labels)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="AUC")
    fig.tight_layout()
    return fig
