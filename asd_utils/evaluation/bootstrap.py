"""Bootstrap intervals and paired comparisons of the official DCASE score, from per-clip scores.

Longer than 500 lines: intervals, paired comparisons and their figures share one resampling
scheme (per-section stratified clip resamples), kept together so that it exists once.

With 50 test clips per domain x label cell, a DCASE score difference of one or two points between
two systems is often noise. This module measures that noise from the clips themselves:

- **Resampling.** Within every machine type and section, the labelled test clips are resampled
  with replacement *inside each domain x label cell* (source normal, source anomaly, target
  normal, target anomaly), so every resample keeps each cell's size and the official metrics stay
  defined. A resample is a vector of integer counts (how often each clip is drawn), never a copy
  of the scores: the metrics of all resamples are computed at once from weighted ROC curves
  (:func:`weighted_roc_area`), exactly as :mod:`asd_utils.evaluation.metrics` computes them on the
  materialised resample (tested against scikit-learn).
- **Paired comparisons.** Every system is scored on the *same* resampled clips, so the share of
  resamples in which system A beats system B (ties count half) is a paired bootstrap comparison.
- **Seeding.** The counts of a section come from a generator seeded by ``(seed, machine type,
  section)`` alone: the same seed gives the same intervals, and adding another machine type or
  another system changes nothing for the others.

Per-clip scores come from the DCASE submission files every notebook writes
(``<results>/submissions/<notebook>/<system folder>/anomaly_score_<machine>_section_<ss>_test.csv``,
see :mod:`asd_utils.evaluation.submission`); domain and label are parsed from the clip names (development
data) or taken from a test index holding the evaluation ground truth.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from asd_utils.data import parse_filename
from asd_utils.evaluation.metrics import DOMAINS, EPS, MAX_FPR, METRICS
from asd_utils.evaluation.submission import read_submission, submission_folder_name

__all__ = [
    "CELL_ORDER",
    "BootstrapResult",
    "ClipScores",
    "align_clip_scores",
    "attach_truth",
    "bootstrap_official_score",
    "bootstrap_results_dir",
    "counts_to_indices",
    "interval_plot",
    "prob_better",
    "prob_better_plot",
    "read_clip_scores",
    "real_differences",
    "resampled_section_metrics",
    "stratified_counts",
    "submission_folder_name",
    "weighted_roc_area",
]

CELL_ORDER = (("source", "normal"), ("source", "anomaly"), ("target", "normal"), ("target", "anomaly"))
_SCORE_FILE_RE = re.compile(r"^anomaly_score_(?P<machine>.+)_section_(?P<section>\d+)_test\.csv$")


# -- per-clip scores ---------------------------------------------------------------------------------
def read_clip_scores(results_dir: str | os.PathLike, tidy: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every per-clip score under ``<results_dir>/submissions/<notebook>/<system folder>/``.

    tidy: the collected results (:func:`asd_utils.evaluation.results.collect_results`), used to give each
    submission folder its system name (folders are :func:`submission_folder_name` of the name);
    a folder no results row names keeps the folder name as its system name.

    Returns one row per clip and system: ``notebook, system, machine, section, file_name, score,
    decision`` (``decision`` 0/1 from the ``decision_result_*`` file, NaN when that file is
    absent), ``domain``, ``label``, ``is_anomaly`` parsed from the clip name (None/NaN for blinded
    names). Empty (with those columns) when there is no submission folder.
    """
    columns = ["notebook", "system", "machine", "section", "file_name", "score", "decision", "domain", "label",
               "is_anomaly"]
    root = Path(results_dir) / "submissions"
    if not root.is_dir():
        return pd.DataFrame(columns=columns)
    names: dict[tuple[str, str], str] = {}
    if tidy is not None and len(tidy):
        for notebook, system in tidy[["notebook", "system"]].drop_duplicates().itertuples(index=False):
            names.setdefault((str(notebook), submission_folder_name(system)), str(system))
    frames = []
    for notebook_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for system_dir in sorted(p for p in notebook_dir.iterdir() if p.is_dir()):
            system = names.get((notebook_dir.name, system_dir.name), system_dir.name)
            for path in sorted(system_dir.glob("anomaly_score_*_test.csv")):
                match = _SCORE_FILE_RE.match(path.name)
                if match is None:
                    raise ValueError(
                        f"{path}: expected a name anomaly_score_<machine>_section_<ss>_test.csv"
                    )
                frame = read_submission(path)
                decision_path = path.with_name(path.name.replace("anomaly_score_", "decision_result_", 1))
                if decision_path.is_file():
                    decisions = read_submission(decision_path).set_index("file_name")["decision"]
                    frame["decision"] = frame["file_name"].map(decisions).astype(np.float64)
                else:
                    frame["decision"] = np.nan
                frame.insert(0, "section", f"{int(match['section']):02d}")
                frame.insert(0, "machine", match["machine"])
                frame.insert(0, "system", system)
                frame.insert(0, "notebook", notebook_dir.name)
                frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    if names:  # systems in the order of the results (notebook order, then as recorded)
        order = {(nb, system): i for i, (nb, system) in enumerate(
            dict.fromkeys(zip(tidy["notebook"].astype(str), tidy["system"].astype(str))))}
        position = [order.get(key, len(order)) for key in zip(out["notebook"], out["system"])]
        out = out.iloc[np.argsort(position, kind="stable")].reset_index(drop=True)
    parsed = {name: _truth_from_name(name) for name in out["file_name"].unique()}
    out["domain"] = out["file_name"].map(lambda n: parsed[n][0])
    out["label"] = out["file_name"].map(lambda n: parsed[n][1])
    out["is_anomaly"] = out["label"].map({"normal": 0.0, "anomaly": 1.0}).astype(np.float64)
    return out[columns]


def _truth_from_name(name: str) -> tuple[str | None, str | None]:
    try:
        clip = parse_filename(name)
    except ValueError:
        return None, None
    return clip.domain, clip.label


def attach_truth(clip_scores: pd.DataFrame, test_index: pd.DataFrame) -> pd.DataFrame:
    """Fill ``domain``/``label``/``is_anomaly`` of clips whose names are blinded from a test index
    (``asd_utils.data.discover`` output with the evaluation ground truth), matched on machine and
    file name. Clips already labelled by their names keep their labels."""
    truth = test_index[test_index["label"].notna() & test_index["domain"].notna()]
    truth = truth.drop_duplicates(["machine", "file_name"]).set_index(["machine", "file_name"])
    out = clip_scores.copy()
    key = pd.MultiIndex.from_arrays([out["machine"], out["file_name"]])
    missing = out["label"].isna().to_numpy() & key.isin(truth.index)
    if missing.any():
        rows = truth.loc[key[missing]]
        out.loc[missing, "domain"] = rows["domain"].to_numpy()
        out.loc[missing, "label"] = rows["label"].to_numpy()
        out.loc[missing, "is_anomaly"] = rows["label"].map({"normal": 0.0, "anomaly": 1.0}).to_numpy()
    return out


@dataclass
class ClipScores:
    """Per-clip scores of several systems on one common set of labelled test clips.

    clips: one row per clip (``machine, section, file_name, domain, label``), sorted by machine,
    section and then cell (:data:`CELL_ORDER`) so each cell is a contiguous block;
    scores: (clips, systems) float64; systems: system keys (column order);
    excluded: system key -> why it was left out (clips missing or different).
    """

    clips: pd.DataFrame
    scores: np.ndarray
    systems: list
    excluded: dict = field(default_factory=dict)


def align_clip_scores(clip_scores: pd.DataFrame, *, key=("notebook", "system"), order: Sequence | None = None
                      ) -> ClipScores:
    """Put every system's scores of the labelled test clips side by side.

    clip_scores: :func:`read_clip_scores` rows (after :func:`attach_truth` where needed);
    key: the columns naming a system; order: system keys in the order wanted (others follow in
    order of appearance). Clips without domain or label are left out (as the metrics
    leave them out). Per machine type and section, the reference clip set is the one most systems
    have; a system scoring a different set there (missing or extra clips) cannot be compared on
    the same clips and is excluded, with the reason, rather than silently bootstrapped on other
    clips.
    """
    key = list(key)
    labelled = clip_scores[clip_scores["domain"].notna() & clip_scores["label"].notna()].copy()
    labelled["_system"] = list(zip(*(labelled[k] for k in key))) if len(key) > 1 else labelled[key[0]]
    seen = list(dict.fromkeys(labelled["_system"]))
    wanted = [s for s in (order or []) if s in set(seen)]
    systems = list(dict.fromkeys([*wanted, *seen]))
    excluded: dict = {}
    references = []
    for (machine, section), group in labelled.groupby(["machine", "section"], sort=True):
        sets = {s: frozenset(g["file_name"]) for s, g in group.groupby("_system", sort=False)}
        counts: dict[frozenset, int] = {}
        for clips in sets.values():
            counts[clips] = counts.get(clips, 0) + 1
        reference = max(counts, key=lambda c: (counts[c], len(c)))
        for system in systems:
            if sets.get(system) != reference and system not in excluded:
                have = len(sets.get(system, ()))
                excluded[system] = (
                    f"{machine} section {section}: scores {have} labelled clips, the others {len(reference)}"
                )
        references.append(group.drop_duplicates("file_name")[["machine", "section", "file_name", "domain", "label"]])
    kept = [s for s in systems if s not in excluded]
    if not references:
        return ClipScores(pd.DataFrame(columns=["machine", "section", "file_name", "domain", "label"]),
                          np.zeros((0, len(kept))), kept, excluded)
    clips = pd.concat(references, ignore_index=True)
    cell_rank = {cell: i for i, cell in enumerate(CELL_ORDER)}
    bad = sorted({(d, lab) for d, lab in zip(clips["domain"], clips["label"]) if (d, lab) not in cell_rank})
    if bad:
        raise ValueError(f"unknown domain/label cells {bad}; expected {CELL_ORDER}")
    clips["_cell"] = [cell_rank[(d, lab)] for d, lab in zip(clips["domain"], clips["label"])]
    clips = clips.sort_values(["machine", "section", "_cell", "file_name"], kind="mergesort").reset_index(drop=True)
    clip_key = pd.MultiIndex.from_frame(clips[["machine", "section", "file_name"]])
    scores = np.empty((len(clips), len(kept)), dtype=np.float64)
    for j, system in enumerate(kept):
        rows = labelled[labelled["_system"] == system].drop_duplicates(["machine", "section", "file_name"])
        series = rows.set_index(["machine", "section", "file_name"])["score"].astype(np.float64)
        scores[:, j] = series.reindex(clip_key).to_numpy()
    return ClipScores(clips.drop(columns="_cell"), scores, kept, excluded)


# -- resampling --------------------------------------------------------------------------------------
def stratified_counts(cell_sizes: Sequence[int], n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap draw counts, resampling with replacement inside each cell.

    cell_sizes: sizes of consecutive cells (the clips of cell 0 come first, and so on);
    n_resamples: B. Returns (B, sum(cell_sizes)) int64: entry [b, i] is how many times clip i is
    drawn in resample b. Every row sums to ``cell_sizes[c]`` over the columns of cell c, so every
    resample keeps each cell's size.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1; got {n_resamples}")
    blocks = []
    for size in cell_sizes:
        size = int(size)
        if size < 0:
            raise ValueError(f"cell sizes must be non-negative; got {list(cell_sizes)}")
        if size == 0:
            continue
        blocks.append(rng.multinomial(size, np.full(size, 1.0 / size), size=n_resamples))
    if not blocks:
        return np.zeros((n_resamples, 0), dtype=np.int64)
    return np.concatenate(blocks, axis=1).astype(np.int64)


def counts_to_indices(counts: np.ndarray) -> list[np.ndarray]:
    """Draw counts (B, n) -> B index arrays (each of length ``counts[b].sum()``), the materialised
    resamples (for checks and plots; the metrics never need them)."""
    return [np.repeat(np.arange(counts.shape[1]), row) for row in np.asarray(counts)]


def weighted_roc_area(scores, positive, weights, *, max_fpr: float | None = None) -> np.ndarray:
    """ROC AUC (or McClish-standardised partial AUC) of every weighted resample at once.

    scores: (n,) float, higher = more anomalous; positive: (n,) bool (True = anomalous);
    weights: (B, n) non-negative draw counts (a clip drawn twice counts twice); max_fpr: None for
    the full AUC, else the FPR limit of the partial AUC.

    Returns (B,) float64, equal to ``sklearn.metrics.roc_auc_score(y, s, max_fpr=max_fpr)`` on the
    materialised resample: ties between a normal and an anomalous clip count one half (the ROC
    curve steps only at distinct scores), and the partial AUC interpolates linearly at
    ``max_fpr`` and applies the McClish standardisation as scikit-learn and the DCASE evaluator do.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    pos = np.asarray(positive, dtype=bool).ravel()
    w = np.atleast_2d(np.asarray(weights))
    if not (np.issubdtype(w.dtype, np.integer) or np.issubdtype(w.dtype, np.floating)):
        w = w.astype(np.float64)
    if w.shape[1] != s.size or pos.size != s.size:
        raise ValueError(f"scores ({s.size}), positive ({pos.size}) and weights {w.shape} disagree")
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    w_sorted = w[:, order]
    if np.issubdtype(w.dtype, np.integer) and w.shape[1] * max(int(w.max(initial=0)), 1) < 2**15:
        w_sorted = w_sorted.astype(np.int32)  # exact, and half the memory traffic of int64
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])  # last index of each tie group
    # Cumulative weights at each distinct threshold: true positives and false positives (B, K).
    tp = np.cumsum(w_sorted * pos[order], axis=1)[:, ends]
    fp = np.cumsum(w_sorted, axis=1)[:, ends] - tp
    n_pos, n_neg = tp[:, -1].astype(np.float64), fp[:, -1].astype(np.float64)
    if (n_pos <= 0).any() or (n_neg <= 0).any():
        raise ValueError("every resample needs anomalous and normal clips with positive weight")
    if max_fpr is None:
        # Trapezoids between consecutive ROC points: sum dfp * (tp + tp_prev) / 2, tp + tp_prev = 2 tp - dtp.
        dfp = np.diff(fp, axis=1, prepend=0)
        dtp = np.diff(tp, axis=1, prepend=0)
        return np.sum(dfp * (2 * tp - dtp), axis=1, dtype=np.float64) / (2.0 * n_pos * n_neg)
    p = float(max_fpr)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"max_fpr must lie in (0, 1]; got {max_fpr}")
    # Only the ROC points up to FPR = p matter: keep the first columns that any resample needs.
    below = (fp < (p * n_neg)[:, None]).sum(axis=1)
    keep = min(int(below.max()) + 1, fp.shape[1])
    x1 = fp[:, :keep] / n_neg[:, None]
    y1 = tp[:, :keep] / n_pos[:, None]
    x0 = np.concatenate([np.zeros((w.shape[0], 1)), x1[:, :-1]], axis=1)
    y0 = np.concatenate([np.zeros((w.shape[0], 1)), y1[:, :-1]], axis=1)
    right = np.minimum(x1, p)
    width = np.clip(right - x0, 0.0, None)
    rising = x1 > x0
    slope = np.divide(y1 - y0, x1 - x0, out=np.zeros_like(x1), where=rising)
    y_right = np.where(x1 <= p, y1, y0 + slope * (right - x0))
    area = np.sum(width * (y0 + y_right), axis=1) / 2.0
    min_area, max_area = 0.5 * p**2, p
    return 0.5 * (1.0 + (area - min_area) / (max_area - min_area))


def resampled_section_metrics(scores, is_anomaly, domains, counts, *, max_fpr: float = MAX_FPR) -> np.ndarray:
    """AUC (source), AUC (target) and pAUC of one section under every resample, for every system.

    scores: (n,) or (n, S) anomaly scores; is_anomaly: (n,) 0/1; domains: (n,) ``source``/``target``;
    counts: (B, n) draw counts (:func:`stratified_counts`). Returns (B, S, 3) float64 in the order
    of :data:`asd_utils.evaluation.metrics.METRICS`, the evaluator's definitions (see
    :mod:`asd_utils.evaluation.metrics`).
    """
    s = np.asarray(scores, dtype=np.float64)
    s = s[:, None] if s.ndim == 1 else s
    y = np.asarray(is_anomaly, dtype=np.float64).ravel() == 1.0
    d = np.asarray(domains, dtype=object).ravel()
    w = np.atleast_2d(np.asarray(counts))
    if not (s.shape[0] == y.size == d.size == w.shape[1]):
        raise ValueError(f"scores {s.shape}, labels ({y.size}), domains ({d.size}) and counts {w.shape} disagree")
    out = np.empty((w.shape[0], s.shape[1], len(METRICS)), dtype=np.float64)
    subsets = [(d == domain) & ~y | y for domain in DOMAINS]
    for j in range(s.shape[1]):
        for m, keep in enumerate(subsets):
            out[:, j, m] = weighted_roc_area(s[keep, j], y[keep], w[:, keep])
        out[:, j, 2] = weighted_roc_area(s[:, j], y, w, max_fpr=max_fpr)
    return out


def _section_rng(seed: int, machine: str, section: str) -> np.random.Generator:
    words = [int(seed) & 0xFFFFFFFF, zlib.crc32(str(machine).encode("utf-8")), zlib.crc32(str(section).encode())]
    return np.random.default_rng(np.random.SeedSequence(words))


# -- the official score ------------------------------------------------------------------------------
@dataclass
class BootstrapResult:
    """Bootstrap distribution of the official score of several systems on the same resamples.

    systems: system keys; point: (S,) official score on the original clips; resamples: (B, S)
    official score of every resample; sections: ``(machine, section)`` per entry of
    ``section_metrics``; section_metrics: list of (B, S, 3) per-section metrics of every resample;
    section_point: list of (S, 3) per-section metrics on the original clips; confidence: level of
    the percentile intervals; n_resamples, seed: how it was drawn; excluded: systems left out.
    """

    systems: list
    point: np.ndarray
    resamples: np.ndarray
    sections: list
    section_metrics: list
    section_point: list
    confidence: float
    n_resamples: int
    seed: int
    excluded: dict = field(default_factory=dict)

    def _bounds(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        alpha = 1.0 - self.confidence
        return (np.quantile(values, alpha / 2, axis=0), np.quantile(values, 1 - alpha / 2, axis=0))

    def intervals(self) -> pd.DataFrame:
        """One row per system: ``system, official_score, ci_low, ci_high, ci_width`` (percentile
        interval of the bootstrap distribution at ``confidence``; fractions)."""
        low, high = self._bounds(self.resamples) if len(self.systems) else (np.zeros(0), np.zeros(0))
        return pd.DataFrame({"system": self.systems, "official_score": self.point, "ci_low": low,
                             "ci_high": high, "ci_width": high - low})

    def machine_intervals(self) -> pd.DataFrame:
        """Per machine type and section: ``system, machine, section, hmean, ci_low, ci_high`` (the
        harmonic mean of the section's three metrics and its bootstrap interval)."""
        rows = []
        for (machine, section), values, point in zip(self.sections, self.section_metrics, self.section_point):
            per = _hmean(values, axis=2)  # (B, S)
            low, high = self._bounds(per)
            hm = _hmean(point, axis=1)
            for j, system in enumerate(self.systems):
                rows.append({"system": system, "machine": machine, "section": section, "hmean": hm[j],
                             "ci_low": low[j], "ci_high": high[j]})
        return pd.DataFrame(rows, columns=["system", "machine", "section", "hmean", "ci_low", "ci_high"])

    def compare(self, a, b) -> dict:
        """Paired comparison of systems ``a`` and ``b`` (keys of ``systems``) on the same resamples:
        ``p_a_better`` (share of resamples in which a's official score beats b's, ties count one
        half), ``difference`` (a - b on the test set) and its interval ``difference_low``,
        ``difference_high`` (percentiles of the paired resampled differences at ``confidence``)."""
        try:
            i, j = self.systems.index(a), self.systems.index(b)
        except ValueError:
            raise ValueError(f"compare: {a!r} or {b!r} is not among the bootstrapped systems {self.systems}") from None
        diff = self.resamples[:, i] - self.resamples[:, j]
        low, high = self._bounds(diff[:, None])
        return {"p_a_better": float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0)),
                "difference": float(self.point[i] - self.point[j]),
                "difference_low": float(low[0]), "difference_high": float(high[0])}

    def prob_better(self) -> pd.DataFrame:
        """Square table: entry [A, B] = share of resamples in which A's official score beats B's
        (ties count one half). A system against itself gives exactly 0.5."""
        return prob_better(self.resamples, self.systems)


def _hmean(values: np.ndarray, axis) -> np.ndarray:
    v = np.maximum(np.asarray(values, dtype=np.float64), EPS)
    n = np.prod([v.shape[a] for a in np.atleast_1d(axis)])
    return n / np.sum(1.0 / v, axis=axis)


def prob_better(resamples: np.ndarray, systems: Sequence) -> pd.DataFrame:
    """Paired bootstrap comparison: [A, B] = P(score_A > score_B) + 0.5 P(score_A == score_B) over
    the resamples. resamples: (B, S), the systems scored on the same resampled clips."""
    r = np.asarray(resamples, dtype=np.float64)
    greater = (r[:, :, None] > r[:, None, :]).mean(axis=0)
    equal = (r[:, :, None] == r[:, None, :]).mean(axis=0)
    labels = [_label(s) for s in systems]
    return pd.DataFrame(greater + 0.5 * equal, index=labels, columns=labels)


def _label(system) -> str:
    return " / ".join(str(p) for p in system) if isinstance(system, tuple) else str(system)


def bootstrap_official_score(
    aligned: ClipScores, *, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
    max_fpr: float = MAX_FPR,
) -> BootstrapResult:
    """Bootstrap the official score of every system of ``aligned`` on shared stratified resamples.

    Per machine type and section, :func:`stratified_counts` draws B resamples of the labelled test
    clips within each domain x label cell (seeded by ``(seed, machine, section)``); every system's
    AUC-s, AUC-t and pAUC are computed for each resample (:func:`resampled_section_metrics`) and
    the official score of a resample is their harmonic mean over all sections (epsilon floor), as
    :func:`asd_utils.evaluation.metrics.official_score`. ``point`` is the same computation on the original
    clips (all counts 1), which equals the official score of the results CSV.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")
    clips, scores = aligned.clips, aligned.scores
    n_systems = scores.shape[1]
    sections, metrics_list, points = [], [], []
    inverse_sum = np.zeros((n_resamples, n_systems))
    inverse_point = np.zeros(n_systems)
    n_values = 0
    for (machine, section), group in clips.groupby(["machine", "section"], sort=True):
        rows = group.index.to_numpy()
        cell_sizes = [int(((group["domain"] == d) & (group["label"] == lab)).sum()) for d, lab in CELL_ORDER]
        counts = stratified_counts(cell_sizes, n_resamples, _section_rng(seed, machine, section))
        y = (group["label"] == "anomaly").to_numpy(dtype=np.float64)
        d = group["domain"].to_numpy()
        values = resampled_section_metrics(scores[rows], y, d, counts, max_fpr=max_fpr)
        point = resampled_section_metrics(scores[rows], y, d, np.ones((1, len(rows)), dtype=np.int64),
                                          max_fpr=max_fpr)[0]
        sections.append((machine, section))
        metrics_list.append(values)
        points.append(point)
        inverse_sum += np.sum(1.0 / np.maximum(values, EPS), axis=2)
        inverse_point += np.sum(1.0 / np.maximum(point, EPS), axis=1)
        n_values += len(METRICS)
    if n_values == 0:
        resamples = np.full((n_resamples, n_systems), np.nan)
        point_score = np.full(n_systems, np.nan)
    else:
        resamples = n_values / inverse_sum
        point_score = n_values / inverse_point
    return BootstrapResult(
        systems=list(aligned.systems), point=point_score, resamples=resamples, sections=sections,
        section_metrics=metrics_list, section_point=points, confidence=float(confidence),
        n_resamples=int(n_resamples), seed=int(seed), excluded=dict(aligned.excluded),
    )


def bootstrap_results_dir(
    results_dir: str | os.PathLike, tidy: pd.DataFrame | None = None, *, test_index: pd.DataFrame | None = None,
    n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95, clip_scores: pd.DataFrame | None = None,
) -> BootstrapResult:
    """Read every system's per-clip scores under ``results_dir`` and bootstrap them together.

    tidy: the collected results (system names of the submission folders); test_index: optional
    ``discover`` output holding the ground truth of blinded evaluation clips. Systems are keyed by
    ``(notebook, system)``. clip_scores: the :func:`read_clip_scores` rows (with truth attached)
    when the caller has read them already; then ``results_dir`` and ``test_index`` are not used.
    """
    if clip_scores is None:
        clip_scores = read_clip_scores(results_dir, tidy)
        if test_index is not None and len(clip_scores):
            clip_scores = attach_truth(clip_scores, test_index)
    order = None if tidy is None else list(dict.fromkeys(zip(tidy["notebook"].astype(str), tidy["system"].astype(str))))
    aligned = align_clip_scores(clip_scores, order=order)
    return bootstrap_official_score(aligned, n_resamples=n_resamples, seed=seed, confidence=confidence)


# -- figures -----------------------------------------------------------------------------------------
def interval_plot(intervals: pd.DataFrame, *, label: str = "label", title: str = ""):
    """Forest plot: each system's official score (dot) and bootstrap interval (bar), best on top.

    intervals: rows with ``official_score, ci_low, ci_high`` and a ``label`` column (fractions;
    shown in percent). Returns the figure.
    """

    frame = intervals.sort_values("official_score").reset_index(drop=True)
    longest = max((len(str(v)) for v in frame[label]), default=10)
    fig, ax = plt.subplots(figsize=(5.0 + 0.065 * longest, 1.0 + 0.28 * max(len(frame), 1)))
    y = np.arange(len(frame))
    ax.hlines(y, 100 * frame["ci_low"], 100 * frame["ci_high"], color="tab:blue", lw=2.2, alpha=0.6)
    ax.plot(100 * frame["official_score"], y, "o", color="black", ms=4)
    ax.set_yticks(y)
    ax.set_yticklabels(frame[label], fontsize=7)
    ax.set_xlabel("official score (%), dot = on the test set, bar = bootstrap interval")
    ax.axvline(50, color="grey", lw=0.8, ls=":")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def prob_better_plot(matrix: pd.DataFrame, *, level: float = 0.95, title: str = ""):
    """Heatmap of P(row system beats column system) (:meth:`BootstrapResult.prob_better`).

    Cells with P >= ``level`` or P <= 1 - ``level`` (a difference the resampling rarely reverses)
    carry their value in bold; the others are printed faint (not at all beyond 20 systems):
    differences the test set cannot tell apart. Returns the figure.
    """

    values = matrix.to_numpy(dtype=np.float64)
    n = len(matrix)
    size = min(max(4.0, 0.42 * n + 2.0), 16.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(values, cmap="RdBu_r", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            real = values[i, j] >= level or values[i, j] <= 1 - level
            if n > 20 and not real:
                continue  # many systems: print only the differences that are real
            dark = abs(values[i, j] - 0.5) > 0.3  # text on the saturated ends of the colour map
            ax.text(j, i, f"{100 * values[i, j]:.0f}", ha="center", va="center", fontsize=6 if n > 12 else 7,
                    fontweight="bold" if real else "normal", color="white" if dark else "black",
                    alpha=1.0 if real else 0.55)
    ax.set_xticks(range(n))
    ax.set_xticklabels(matrix.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n))
    ax.set_yticklabels(matrix.index, fontsize=7)
    ax.set_xlabel("B")
    ax.set_ylabel("A")
    ax.set_title(title or f"P(A beats B) over bootstrap resamples; bold: >= {level:.0%} or <= {1 - level:.0%}",
                 fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, label="P(A > B), ties count half")
    fig.tight_layout()
    return fig


def real_differences(matrix: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """Pairs (A, B) with P(A beats B) >= ``level``: ``better, worse, p_better``, sorted by p."""
    rows = [
        {"better": a, "worse": b, "p_better": float(matrix.loc[a, b])}
        for a in matrix.index for b in matrix.columns if a != b and matrix.loc[a, b] >= level
    ]
    frame = pd.DataFrame(rows, columns=["better", "worse", "p_better"])
    return frame.sort_values("p_better", ascending=False, kind="mergesort").reset_index(drop=True)
