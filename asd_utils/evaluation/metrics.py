"""Metrics of the official DCASE Task 2 evaluator, and the result tables of the DCASE papers.

The definitions follow the official evaluator (``nttcslab/dcase2024_task2_evaluator``,
``dcase2024_task2_evaluator.py``, whose 2025 successor keeps the same scoring) and the official
baseline (``nttcslab/dcase2023_task2_baseline_ae``):

- **AUC (source)** of a section: ROC AUC over the *source-domain normal* clips plus *all anomalous*
  clips of the section (source and target). **AUC (target)** likewise with the target normals.
- **pAUC** of a section: ``sklearn.metrics.roc_auc_score(y, s, max_fpr=0.1)`` over *all* clips of
  the section. scikit-learn returns the McClish-standardised partial AUC,
  ``0.5 * (1 + (A - 0.5 * p**2) / (p - 0.5 * p**2))`` with ``A`` the raw area of the ROC curve
  between FPR 0 and ``p = max_fpr`` (linear interpolation at ``p``); the evaluator reports exactly
  that value, so this module does too.
- **Official score**: the harmonic mean of the flat list of every AUC (source), AUC (target) and
  pAUC value over all machine types and sections, each value first floored at the float epsilon
  (``sys.float_info.epsilon`` = ``np.finfo(float).eps``).
- In the paper layout, the value of a machine type is the arithmetic mean over its sections (one
  section per machine type since DCASE 2023), and the h-mean column is the harmonic mean over all
  machine types and sections.

All metrics are fractions in [0, 1]; the paper table (:func:`dcase_table`) shows percent.
Higher anomaly score = more anomalous.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

MAX_FPR = 0.1
EPS = float(np.finfo(float).eps)
METRICS = ("auc_source", "auc_target", "pauc")
PAPER_METRICS = {"auc_source": "AUC-s", "auc_target": "AUC-t", "pauc": "pAUC"}
DOMAINS = ("source", "target")

__all__ = [
    "EPS",
    "MAX_FPR",
    "METRICS",
    "dcase_table",
    "domain_pair_aucs",
    "evaluate",
    "hmean",
    "official_score",
    "section_metrics",
]


def hmean(values: Iterable[float] | np.ndarray, *, floor: float = EPS) -> float:
    """Harmonic mean of ``values`` after flooring each at ``floor`` (the evaluator's epsilon).

    values: any array-like of non-negative numbers (flattened). NaN values raise ``ValueError``.
    Returns a float; a zero value contributes ``floor`` and so pulls the mean to about ``n * floor``.
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("hmean of an empty set of values")
    if np.isnan(arr).any():
        raise ValueError(f"hmean got NaN values: {arr.tolist()}")
    arr = np.maximum(arr, floor)
    return float(arr.size / np.sum(1.0 / arr))


def _as_labels(is_anomaly, name: str = "is_anomaly") -> np.ndarray:
    arr = np.asarray(is_anomaly, dtype=np.float64).ravel()
    if np.isnan(arr).any():
        raise ValueError(f"{name} holds unknown (NaN) labels: ground truth is needed to evaluate")
    if not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold 0/1 (normal/anomaly); got values {np.unique(arr).tolist()}")
    return arr.astype(np.int64)


def section_metrics(is_anomaly, scores, domains, max_fpr: float = MAX_FPR, *, where: str = "section") -> dict:
    """AUC (source), AUC (target) and pAUC of one section, as the official evaluator computes them.

    is_anomaly: (N,) 0/1 (1 = anomalous clip); scores: (N,) float, higher = more anomalous;
    domains: (N,) strings ``'source'``/``'target'``; max_fpr: FPR limit of the pAUC (0.1 in DCASE).
    ``where`` names the section in error messages.

    Returns ``{'auc_source': float, 'auc_target': float, 'pauc': float}``, fractions in [0, 1].
    Ties between a normal and an anomalous score count one half (scikit-learn's ROC AUC).
    Raises ``ValueError`` when a domain lacks normal clips, the section lacks anomalous clips, a
    domain is not source/target, or the lengths disagree.
    """
    y = _as_labels(is_anomaly)
    s = np.asarray(scores, dtype=np.float64).ravel()
    d = np.asarray(domains, dtype=object).ravel()
    if not (len(y) == len(s) == len(d)):
        raise ValueError(
            f"{where}: is_anomaly, scores and domains must have the same length; "
            f"got {len(y)}, {len(s)}, {len(d)}"
        )
    if not np.isfinite(s).all():
        raise ValueError(f"{where}: scores must be finite; {int((~np.isfinite(s)).sum())} are NaN/inf")
    bad = sorted({str(v) for v in d if v not in DOMAINS})
    if bad:
        raise ValueError(f"{where}: domains must be 'source' or 'target'; got {bad}")
    if not (y == 1).any():
        raise ValueError(f"{where}: no anomalous clips; AUC and pAUC need both normal and anomalous clips")
    out = {}
    for domain in DOMAINS:
        normal = (d == domain) & (y == 0)
        if not normal.any():
            raise ValueError(f"{where}: no normal clips of the {domain} domain; AUC ({domain}) is undefined")
        keep = normal | (y == 1)
        out[f"auc_{domain}"] = float(roc_auc_score(y[keep], s[keep]))
    out["pauc"] = float(roc_auc_score(y, s, max_fpr=max_fpr))
    return out


def _labelled_scores(test_index: pd.DataFrame, scores) -> pd.DataFrame:
    """``machine, section, domain, is_anomaly, score`` of the test clips that have ground truth.

    Blinded evaluation clips whose ground truth is not available cannot be scored by any metric;
    they still get submission files. Metrics use every clip that has a label and a domain.
    """
    missing = [c for c in ("machine", "section", "domain", "is_anomaly") if c not in test_index.columns]
    if missing:
        raise ValueError(f"test_index lacks columns {missing}; expected machine, section, domain, is_anomaly")
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(s) != len(test_index):
        raise ValueError(f"got {len(s)} scores for {len(test_index)} test clips; they must align by position")
    frame = test_index[["machine", "section", "domain", "is_anomaly"]].reset_index(drop=True).copy()
    frame["score"] = s
    labelled = frame["is_anomaly"].notna() & frame["domain"].notna()
    if not labelled.any():
        raise ValueError(
            "no test clip has ground truth (label and domain): metrics need the evaluation ground-truth CSVs "
            "(ground_truth_data/, ground_truth_domain/) under the data root"
        )
    return frame[labelled.to_numpy()]


def evaluate(test_index: pd.DataFrame, scores, *, max_fpr: float = MAX_FPR) -> pd.DataFrame:
    """Metrics per machine type and section.

    test_index: DataFrame with columns ``machine``, ``section``, ``domain``, ``is_anomaly`` (one row
    per test clip, as :func:`asd_utils.data.discover` gives); scores: (N,) anomaly scores aligned
    with the rows of ``test_index`` by position.

    Returns a DataFrame with columns ``machine, section, auc_source, auc_target, pauc, hmean``
    (``hmean``: harmonic mean of the three metrics of the row, each floored at epsilon), one row
    per machine/section, sorted by machine then section. Clips without ground truth (``is_anomaly``
    or ``domain`` missing, e.g. blinded evaluation clips) are left out of the metrics.
    """
    frame = _labelled_scores(test_index, scores)
    rows = []
    for (machine, section), group in frame.groupby(["machine", "section"], sort=True):
        m = section_metrics(
            group["is_anomaly"].to_numpy(),
            group["score"].to_numpy(),
            group["domain"].to_numpy(),
            max_fpr=max_fpr,
            where=f"machine {machine!r} section {section!r}",
        )
        rows.append({"machine": machine, "section": section, **m, "hmean": hmean(list(m.values()))})
    return pd.DataFrame(rows, columns=["machine", "section", *METRICS, "hmean"])


def _rank_auc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    """ROC AUC of anomalous above normal scores by the Mann-Whitney rank sum (ties count one half,
    as ``roc_auc_score``); (n,) and (m,) float arrays, both non-empty."""

    ranks = rankdata(np.concatenate([normal, anomalous]))
    m, n = len(anomalous), len(normal)
    return float((ranks[n:].sum() - m * (m + 1) / 2.0) / (m * n))


def domain_pair_aucs(test_index: pd.DataFrame, scores) -> pd.DataFrame:
    """ROC AUC of the normal clips of one domain against the anomalous clips of one domain.

    The official AUC (target) pools the anomalies of both domains against the target normals;
    it is exactly the mean of AUC(target normals, source anomalies) and AUC(target normals, target
    anomalies), weighted by the two anomaly counts (likewise AUC (source)). Splitting it shows
    whether a low AUC (target) comes from missing the target anomalies or from scoring target
    normals above *source* anomalies, i.e. from a different score scale in the two domains.

    test_index and scores as in :func:`evaluate` (clips without ground truth are left out).
    Returns one row per machine type, section, ``normals`` domain and ``anomalies`` domain with
    ``auc`` (a fraction; NaN when one of the two groups is empty) and ``n_normals``,
    ``n_anomalies``, sorted by machine, section, normals, anomalies.
    """
    frame = _labelled_scores(test_index, scores)
    if not np.isfinite(frame["score"].to_numpy()).all():
        raise ValueError("scores must be finite")
    rows = []
    for (machine, section), group in frame.groupby(["machine", "section"], sort=True):
        y = _as_labels(group["is_anomaly"].to_numpy())
        d, score = group["domain"].to_numpy(), group["score"].to_numpy()
        for normals in DOMAINS:
            for anomalies in DOMAINS:
                is_normal, is_anomaly = (d == normals) & (y == 0), (d == anomalies) & (y == 1)
                n_normals, n_anomalies = int(is_normal.sum()), int(is_anomaly.sum())
                auc = _rank_auc(score[is_normal], score[is_anomaly]) if n_normals and n_anomalies else float("nan")
                rows.append({"machine": machine, "section": section, "normals": normals, "anomalies": anomalies,
                             "auc": auc, "n_normals": n_normals, "n_anomalies": n_anomalies})
    return pd.DataFrame(rows, columns=["machine", "section", "normals", "anomalies", "auc", "n_normals",
                                       "n_anomalies"])


def official_score(table: pd.DataFrame) -> float:
    """Official DCASE score: harmonic mean of every AUC (source), AUC (target) and pAUC of ``table``.

    table: DataFrame with columns ``auc_source, auc_target, pauc`` (fractions), one row per machine
    type and section (as :func:`evaluate` returns). Each value is floored at epsilon first.
    """
    missing = [c for c in METRICS if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks metric columns {missing}")
    return hmean(table[list(METRICS)].to_numpy(dtype=np.float64))


def dcase_table(
    tidy: pd.DataFrame, systems: Sequence[str] | None = None, *, percent: bool = True
) -> pd.DataFrame:
    """Result table in the layout of the DCASE papers: one row per system.

    tidy: DataFrame with columns ``system, machine, section, auc_source, auc_target, pauc`` (the
    tidy results CSVs; several sections per machine are averaged arithmetically, as the evaluator
    does). systems: which systems to show and in which order (default: order of appearance).

    Returns a DataFrame indexed by system with MultiIndex columns ``(machine, metric)``, metric in
    ``AUC-s, AUC-t, pAUC`` (percent unless ``percent=False``), machines sorted, plus a last group
    ``Total`` with the harmonic mean over all machines and sections of each metric and ``hmean``,
    the official score.
    """
    need = ["system", "machine", "section", *METRICS]
    missing = [c for c in need if c not in tidy.columns]
    if missing:
        raise ValueError(f"tidy results lack columns {missing}; expected {need}")
    if systems is None:
        systems = list(dict.fromkeys(tidy["system"].tolist()))
    else:
        unknown = [s for s in systems if s not in set(tidy["system"])]
        if unknown:
            raise ValueError(
                f"systems {unknown} are not in the results; known: {sorted(set(tidy['system']))}"
            )
    scale = 100.0 if percent else 1.0
    machines = sorted(tidy["machine"].unique())
    columns = pd.MultiIndex.from_tuples(
        [(m, PAPER_METRICS[k]) for m in machines for k in METRICS]
        + [("Total", PAPER_METRICS[k]) for k in METRICS]
        + [("Total", "hmean")],
        names=["machine", "metric"],
    )
    out = pd.DataFrame(index=pd.Index(list(systems), name="system"), columns=columns, dtype=np.float64)
    for system in systems:
        rows = tidy[tidy["system"] == system]
        per_machine = rows.groupby("machine")[list(METRICS)].mean()
        for machine, values in per_machine.iterrows():
            for k in METRICS:
                out.loc[system, (machine, PAPER_METRICS[k])] = scale * values[k]
        for k in METRICS:
            out.loc[system, ("Total", PAPER_METRICS[k])] = scale * hmean(rows[k].to_numpy())
        out.loc[system, ("Total", "hmean")] = scale * official_score(rows)
    return out
