"""DCASE Task 2 submission files and the official baseline's gamma decision threshold.

Per machine type and section the challenge expects two CSV files without header:

- ``anomaly_score_<machine>_section_<ss>_test.csv``: rows ``file_name,score`` (higher = more
  anomalous), ``file_name`` the base name of the test WAV;
- ``decision_result_<machine>_section_<ss>_test.csv``: rows ``file_name,0|1`` (1 = anomalous).

The official baseline (``nttcslab/dcase2023_task2_baseline_ae``, ``networks/base_model.py``) fits
a gamma distribution to the anomaly scores of the *training* clips with ``scipy.stats.gamma.fit``
(shape, location and scale all free: no ``floc``), sets the threshold at
``scipy.stats.gamma.ppf(0.9, shape, loc, scale)`` and decides 1 when ``score > threshold``.
No test statistic enters the threshold.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from asd_utils.storage.atomic import atomic_write_text

__all__ = [
    "decision_file_name",
    "gamma_threshold",
    "read_submission",
    "submission_folder_name",
    "score_file_name",
    "section_tag",
    "write_submission",
    "write_submissions",
]


def section_tag(section) -> str:
    """Two-digit section string: ``0`` / ``'0'`` / ``'00'`` / ``'section_00'`` -> ``'00'``."""
    text = str(section)
    if text.startswith("section_"):
        text = text[len("section_") :]
    if not text.isdigit():
        raise ValueError(f"section must be a number such as '00'; got {section!r}")
    return f"{int(text):02d}"


def score_file_name(machine: str, section) -> str:
    """``anomaly_score_<machine>_section_<ss>_test.csv``."""
    return f"anomaly_score_{machine}_section_{section_tag(section)}_test.csv"


def decision_file_name(machine: str, section) -> str:
    """``decision_result_<machine>_section_<ss>_test.csv``."""
    return f"decision_result_{machine}_section_{section_tag(section)}_test.csv"


def gamma_threshold(train_scores, quantile: float = 0.9) -> float:
    """Decision threshold of the official baseline: gamma ``ppf(quantile)`` of the training scores.

    train_scores: (N,) anomaly scores of the normal *training* clips (never test clips).
    Fits ``scipy.stats.gamma.fit(train_scores)`` with shape, location and scale free, as the
    baseline does, and returns ``scipy.stats.gamma.ppf(quantile, shape, loc, scale)``.
    With fewer than 3 scores or all scores equal, or when the fit fails or gives a non-finite
    threshold, the empirical ``quantile`` of the training scores is returned instead.
    """
    x = np.asarray(train_scores, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("gamma_threshold needs at least one training score")
    if not np.isfinite(x).all():
        raise ValueError("gamma_threshold: training scores must be finite")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1); got {quantile}")
    if x.size < 3 or np.ptp(x) == 0:
        return float(np.quantile(x, quantile))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            shape, loc, scale = scipy.stats.gamma.fit(x)
            threshold = float(scipy.stats.gamma.ppf(quantile, shape, loc=loc, scale=scale))
    except (ValueError, RuntimeError, FloatingPointError):
        threshold = float("nan")
    if not np.isfinite(threshold):
        threshold = float(np.quantile(x, quantile))
    return threshold


def _csv_text(rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows(rows)
    return buffer.getvalue()


def write_submission(
    out_dir: str | os.PathLike, machine: str, section, file_names, scores, threshold: float
) -> tuple[Path, Path]:
    """Write the two DCASE CSV files of one machine type and section, atomically.

    out_dir: folder to write into (created); machine: machine type; section: section id;
    file_names: (M,) base names of the test WAVs (paths are reduced to their base name);
    scores: (M,) anomaly scores, higher = more anomalous; threshold: decision threshold
    (1 = anomalous iff ``score > threshold``).

    Returns ``(score_path, decision_path)``. Scores are written with ``repr`` precision.
    """
    names = [os.path.basename(str(n)) for n in file_names]
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(names) != len(s):
        raise ValueError(f"{machine} section {section}: {len(names)} file names but {len(s)} scores")
    if not np.isfinite(s).all():
        raise ValueError(f"{machine} section {section}: scores must be finite")
    if not np.isfinite(threshold):
        raise ValueError(f"{machine} section {section}: threshold must be finite; got {threshold}")
    out = Path(out_dir)
    score_path = out / score_file_name(machine, section)
    decision_path = out / decision_file_name(machine, section)
    atomic_write_text(score_path, _csv_text([name, repr(float(v))] for name, v in zip(names, s)))
    atomic_write_text(decision_path, _csv_text([name, int(v > threshold)] for name, v in zip(names, s)))
    return score_path, decision_path


def write_submissions(
    out_dir: str | os.PathLike,
    test_index: pd.DataFrame,
    scores,
    train_index: pd.DataFrame,
    train_scores,
    *,
    quantile: float = 0.9,
) -> dict[tuple[str, str], tuple[Path, Path]]:
    """Write the submission files of every machine type and section of ``test_index``.

    test_index: DataFrame with ``machine, section, file_name`` (one row per test clip);
    scores: (M,) aligned with ``test_index`` by position. train_index: DataFrame with
    ``machine, section`` of the training clips; train_scores: (N,) their anomaly scores (computed
    without self-matching, see :func:`asd_utils.scoring.fit_scores_from_training`), aligned by
    position. Each section's threshold is :func:`gamma_threshold` of the training scores of the
    same machine type and section.

    Returns ``{(machine, section): (score_path, decision_path)}``.
    """
    for name, frame, cols in (
        ("test_index", test_index, ("machine", "section", "file_name")),
        ("train_index", train_index, ("machine", "section")),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks columns {missing}")
    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(train_scores, dtype=np.float64).ravel()
    if len(s) != len(test_index):
        raise ValueError(f"{len(s)} test scores for {len(test_index)} test clips")
    if len(t) != len(train_index):
        raise ValueError(f"{len(t)} training scores for {len(train_index)} training clips")
    test_keys = list(zip(test_index["machine"].astype(str), test_index["section"].map(section_tag)))
    train_keys = np.array(
        [
            f"{m}\0{sec}"
            for m, sec in zip(train_index["machine"].astype(str), train_index["section"].map(section_tag))
        ]
    )
    names = test_index["file_name"].to_numpy()
    written = {}
    for key in sorted(set(test_keys)):
        machine, section = key
        rows = np.array([k == key for k in test_keys])
        train = t[train_keys == f"{machine}\0{section}"]
        if train.size == 0:
            raise ValueError(
                f"no training scores for machine {machine!r} section {section}: cannot set a threshold"
            )
        threshold = gamma_threshold(train, quantile)
        written[key] = write_submission(out_dir, machine, section, names[rows], s[rows], threshold)
    return written


def read_submission(path: str | os.PathLike) -> pd.DataFrame:
    """Read a submission CSV (no header) into a DataFrame.

    Columns: ``file_name`` and ``score`` (float) for ``anomaly_score_*`` files, ``decision`` (int)
    for ``decision_result_*`` files, ``value`` (float) otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"submission file not found: {path}")
    if path.name.startswith("anomaly_score_"):
        column, dtype = "score", np.float64
    elif path.name.startswith("decision_result_"):
        column, dtype = "decision", np.int64
    else:
        column, dtype = "value", np.float64
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    bad = [i for i, row in enumerate(rows) if len(row) != 2]
    if bad:
        raise ValueError(f"{path}: expected 2 columns (file_name,{column}) per row; row {bad[0] + 1} differs")
    return pd.DataFrame(
        {
            "file_name": [r[0] for r in rows],
            column: np.array([r[1] for r in rows], dtype=np.float64).astype(dtype),
        }
    )


def submission_folder_name(system: str) -> str:
    """The folder name of a system's submission files under ``submissions/<notebook>/``: the system
    name with every character other than letters, digits, ``-``, ``_`` and ``.`` replaced by ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(system))
