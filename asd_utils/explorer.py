"""Error analysis across systems: which test clips most systems get wrong, and what those clips are.

Works from the per-clip submission files every notebook writes (read with
:func:`asd_utils.bootstrap.read_clip_scores`) and the data index of the test clips.

- **Rank-normalised scores.** Raw scores of different systems live on different scales, so each
  system's scores are replaced by their rank among the test clips of the same machine type and
  section, divided by the number of clips: a value in (0, 1], 1 = the clip this system finds most
  anomalous. (Ties get their average rank.)
- **Wrong.** A clip is *wrong* for a system when the system's own decision disagrees with the
  truth: a normal clip decided anomalous (false alarm) or an anomalous clip decided normal
  (missed anomaly). The decision is the one the system submitted, ``decision_result_*.csv``,
  whose threshold was set from training scores only (gamma fit, the official baseline's rule).
  Only where a system wrote no decision file, the *rank rule* decides instead: anomalous iff its
  rank-normalised score is above 0.5, i.e. the clip is in the upper half of the section's test
  clips (DCASE test sets are half anomalous by design). Which rule decided is kept per system.
- **Hidden truth.** On the compendium's synthetic data, ``synth_metadata.csv`` at the data root
  holds every clip's recipe: the anomaly kind, its severity, the SNR of the background, the hall,
  and the true attributes even where the file name hides them (``noAttribute``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "RANK_RULE",
    "DECISION_FILES",
    "clip_details",
    "clip_table",
    "error_rates",
    "error_table",
    "explorer",
    "load_hidden_truth",
    "rank_heatmap",
    "rank_normalise",
    "system_label",
]

DECISION_FILES = "decision file"
RANK_RULE = "rank rule (upper half)"
HIDDEN_TRUTH_COLUMNS = ["anomaly_kind", "severity", "snr_db", "hall", "true_attributes"]


def system_label(notebook: str, system: str) -> str:
    """Short unique label of a system across notebooks: ``"02 System-1"`` (two systems of
    different notebooks may share a name, e.g. ``EAT-FFT`` in 03 and 05)."""
    head = str(notebook).split("_", 1)[0]
    return f"{head} {system}"


def rank_normalise(scores: pd.DataFrame, groups) -> pd.DataFrame:
    """Rank of each clip's score within its group, divided by the group size.

    scores: (clips, systems) DataFrame of raw scores; groups: (clips,) group key (machine type and
    section). Returns the same shape with values in (0, 1] (average rank for ties; NaN stays NaN).
    """
    keys = pd.Series(list(groups), index=scores.index)
    ranks = scores.groupby(keys, sort=False).rank(method="average")
    sizes = scores.notna().groupby(keys, sort=False).transform("sum")
    return ranks / sizes


def load_hidden_truth(data_root: str | os.PathLike) -> pd.DataFrame | None:
    """The synthetic dataset's recipe of every clip, or None when ``data_root`` holds no
    ``synth_metadata.csv`` (real data has no hidden truth to show).

    Returns ``machine, file_name, anomaly_kind`` ("" for normal clips)``, severity, snr_db, hall,
    true_attributes``.
    """
    path = Path(data_root) / "synth_metadata.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path, dtype={"anomaly_kind": str, "attributes": str}, keep_default_na=False)
    need = ["machine", "file_name", "anomaly_kind", "severity", "snr_db", "hall", "attributes"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: lacks columns {missing}; expected {need}")
    frame = frame.rename(columns={"attributes": "true_attributes"})
    return frame[["machine", "file_name", *HIDDEN_TRUTH_COLUMNS]]


def clip_table(clip_scores: pd.DataFrame, machine: str, *, systems=None, index: pd.DataFrame | None = None,
               truth: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every labelled test clip of one machine type with every system's rank and decision.

    clip_scores: :func:`asd_utils.bootstrap.read_clip_scores` rows; machine: machine type;
    systems: system labels (:func:`system_label`) to keep (default: all that scored this machine);
    index: data index (``discover``) to add ``path`` and ``attributes``; truth:
    :func:`load_hidden_truth` output to add the hidden truth.

    Returns ``(table, rules)``: table has one row per clip, columns ``machine, section,
    file_name, domain, label`` (+ ``path, attributes`` + hidden-truth columns when given), then
    ``rank:<system>`` and ``decision:<system>`` (0/1) for each system; rules maps each system to
    :data:`DECISION_FILES` or :data:`RANK_RULE`.
    """
    rows = clip_scores[(clip_scores["machine"] == machine) & clip_scores["label"].notna()
                       & clip_scores["domain"].notna()].copy()
    rows["label_"] = [system_label(n, s) for n, s in zip(rows["notebook"], rows["system"])]
    available = list(dict.fromkeys(rows["label_"]))
    chosen = available if systems is None else [s for s in systems if s in set(available)]
    rows = rows[rows["label_"].isin(chosen)]
    keys = ["machine", "section", "file_name"]
    base = rows.drop_duplicates(keys)[[*keys, "domain", "label"]].sort_values(
        ["section", "domain", "label", "file_name"]).reset_index(drop=True)
    raw = rows.pivot_table(index=keys, columns="label_", values="score", aggfunc="first")
    raw = raw.reindex(pd.MultiIndex.from_frame(base[keys]))[chosen]
    ranks = rank_normalise(raw, [k[1] for k in raw.index])
    decided = rows.pivot_table(index=keys, columns="label_", values="decision", aggfunc="first")
    decided = decided.reindex(index=raw.index, columns=chosen)
    rules = {}
    for system in chosen:
        if decided[system].notna().all():
            rules[system] = DECISION_FILES
        else:
            rules[system] = RANK_RULE
            decided[system] = (ranks[system] > 0.5).astype(np.float64)
    table = base.copy()
    if index is not None:
        info = index[index["machine"] == machine].drop_duplicates("file_name").set_index("file_name")
        table["path"] = table["file_name"].map(info["path"])
        table["attributes"] = table["file_name"].map(info["attributes"])
    if truth is not None:
        hidden = truth[truth["machine"] == machine].drop_duplicates("file_name").set_index("file_name")
        for column in HIDDEN_TRUTH_COLUMNS:
            table[column] = table["file_name"].map(hidden[column])
    for system in chosen:
        table[f"rank:{system}"] = ranks[system].to_numpy()
    for system in chosen:
        table[f"decision:{system}"] = decided[system].to_numpy()
    return table, rules


def _systems_of(table: pd.DataFrame) -> list[str]:
    return [c.split(":", 1)[1] for c in table.columns if c.startswith("rank:")]


def error_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per clip: how many systems get it wrong, sorted most-wrong first.

    table: :func:`clip_table` output. Adds ``error`` (``false alarm`` for normal clips,
    ``missed anomaly`` for anomalous ones: what getting it wrong means for this clip),
    ``n_wrong`` (systems whose decision is wrong), ``share_wrong`` (n_wrong / systems) and
    ``mean_rank`` (mean rank-normalised score). Sorted by ``share_wrong`` (descending), then by
    how far the mean rank sits on the wrong side.
    """
    systems = _systems_of(table)
    out = table.copy()
    anomalous = (out["label"] == "anomaly").to_numpy()
    decisions = out[[f"decision:{s}" for s in systems]].to_numpy(dtype=np.float64)
    wrong = np.where(anomalous[:, None], decisions == 0, decisions == 1)
    out["error"] = np.where(anomalous, "missed anomaly", "false alarm")
    out["n_wrong"] = wrong.sum(axis=1)
    out["share_wrong"] = out["n_wrong"] / max(len(systems), 1)
    out["mean_rank"] = out[[f"rank:{s}" for s in systems]].mean(axis=1)
    wrongness = np.where(anomalous, 1.0 - out["mean_rank"], out["mean_rank"])
    out["_order"] = wrongness
    out = out.sort_values(["share_wrong", "_order"], ascending=False, kind="mergesort").drop(columns="_order")
    return out.reset_index(drop=True)


def error_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Per system and domain: false-alarm rate (share of normal clips decided anomalous) and
    miss rate (share of anomalous clips decided normal), from :func:`clip_table` output."""
    rows = []
    for system in _systems_of(table):
        decision = table[f"decision:{system}"]
        for domain in sorted(table["domain"].unique()):
            in_domain = table["domain"] == domain
            normal = in_domain & (table["label"] == "normal")
            anomaly = in_domain & (table["label"] == "anomaly")
            rows.append({
                "system": system, "domain": domain,
                "false_alarm_rate": float((decision[normal] == 1).mean()) if normal.any() else np.nan,
                "miss_rate": float((decision[anomaly] == 0).mean()) if anomaly.any() else np.nan,
            })
    return pd.DataFrame(rows, columns=["system", "domain", "false_alarm_rate", "miss_rate"])


def clip_details(errors: pd.DataFrame, file_name: str) -> pd.Series:
    """Everything known about one clip of :func:`error_table` output, as a labelled Series."""
    match = errors[errors["file_name"] == file_name]
    if match.empty:
        raise ValueError(f"clip {file_name!r} is not in the table (known: {len(errors)} clips)")
    return match.iloc[0]


def rank_heatmap(table: pd.DataFrame, *, title: str = "", caveat: str = ""):
    """Figure: rank-normalised score of every clip (rows, grouped by domain x label) under every
    system (columns), with each system's wrong decisions outlined. Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    systems = _systems_of(table)
    ordered = table.assign(_m=table[[f"rank:{s}" for s in systems]].mean(axis=1)).sort_values(
        ["domain", "label", "_m"], kind="mergesort")
    values = ordered[[f"rank:{s}" for s in systems]].to_numpy(dtype=np.float64)
    height = min(max(3.0, 0.06 * len(ordered)), 14.0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * max(len(systems), 2), height))
    image = ax.imshow(values, aspect="auto", cmap="coolwarm", vmin=0.0, vmax=1.0, interpolation="nearest")
    anomalous = (ordered["label"] == "anomaly").to_numpy()
    decisions = ordered[[f"decision:{s}" for s in systems]].to_numpy(dtype=np.float64)
    wrong = np.where(anomalous[:, None], decisions == 0, decisions == 1)
    # one collection, not one patch per cell: thousands of add_patch calls took seconds per figure
    outlines = [Rectangle((j - 0.5, i - 0.5), 1, 1) for i, j in zip(*np.nonzero(wrong))]
    ax.add_collection(PatchCollection(outlines, facecolor="none", edgecolor="black", linewidth=0.5))
    cells = ordered["domain"] + " " + ordered["label"]
    starts = np.flatnonzero(np.r_[True, cells.to_numpy()[1:] != cells.to_numpy()[:-1]])
    for start in starts[1:]:
        ax.axhline(start - 0.5, color="black", lw=1.2)
    ax.set_yticks(starts + (np.diff(np.r_[starts, len(cells)]) - 1) / 2)
    ax.set_yticklabels(cells.to_numpy()[starts], fontsize=7)
    ax.set_xticks(range(len(systems)))
    ax.set_xticklabels(systems, rotation=60, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="rank-normalised score (1 = most anomalous)", fraction=0.05)
    if caveat:
        fig.text(0.01, 0.0, caveat, fontsize=7, color="grey", ha="left", va="top")
    fig.tight_layout()
    return fig


def explorer(clip_scores: pd.DataFrame, index: pd.DataFrame, *, truth: pd.DataFrame | None = None,
             machine: str | None = None, systems=None, top: int = 15, caveat: str = ""):
    """Widgets: pick a machine type and systems; see every clip's rank under every system, the
    clips most systems get wrong, and for a picked clip its audio, spectrogram, domain,
    attributes and (synthetic data) hidden truth.

    clip_scores: :func:`asd_utils.bootstrap.read_clip_scores` rows; index: the data index
    (``discover``) with the clips' paths; truth: :func:`load_hidden_truth` output or None;
    machine / systems: the initial selection (default: the first machine type, every system);
    top: rows of the most-wrong list; caveat: text shown above every view (synthetic data,
    stand-in backbones). Returns an ipywidgets ``VBox``; it is filled at once with the default
    selection, so it renders under papermill without interaction.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import Audio, Markdown, display

    from asd_utils.tour import clip_figure

    labelled = clip_scores[clip_scores["label"].notna()]
    machines = sorted(labelled["machine"].unique())
    if not machines:
        return widgets.HTML("No labelled per-clip scores to explore.")
    all_systems = list(dict.fromkeys(system_label(n, s) for n, s in zip(labelled["notebook"], labelled["system"])))
    machine_box = widgets.Dropdown(options=machines, value=machine if machine in machines else machines[0],
                                   description="machine")
    system_box = widgets.SelectMultiple(options=all_systems, value=tuple(systems or all_systems), rows=8,
                                        description="systems", layout=widgets.Layout(width="60%"))
    clip_box = widgets.Dropdown(description="clip", layout=widgets.Layout(width="90%"))
    overview, detail = widgets.Output(), widgets.Output()
    state: dict = {}

    def refresh(*_):
        table, rules = clip_table(clip_scores, machine_box.value, systems=list(system_box.value), index=index,
                                  truth=truth)
        state["errors"] = error_table(table) if len(_systems_of(table)) else table.iloc[:0]
        errors = state["errors"]
        clip_box.options = [
            (f"{row.n_wrong}/{len(_systems_of(table))} wrong · {row.error} · {row.domain} · {row.file_name}",
             row.file_name) for row in errors.itertuples()
        ]
        clip_box.value = errors["file_name"].iloc[0] if len(errors) else None  # the most-wrong clip
        overview.clear_output(wait=True)
        with overview:
            if caveat:
                display(Markdown(caveat))
            if errors.empty:
                print("no system scored this machine type")
                return
            display(Markdown("Decision rule per system: " + "; ".join(f"{s}: {r}" for s, r in rules.items())))
            fig = rank_heatmap(table, title=f"{machine_box.value}: rank-normalised scores (outlined: wrong)")
            plt.show()
            plt.close(fig)
            shown = ["file_name", "domain", "label", "error", "n_wrong", "share_wrong", "mean_rank",
                     *[c for c in ("attributes", *HIDDEN_TRUTH_COLUMNS) if c in errors.columns]]
            display(errors[shown].head(top))
        show_clip()

    def show_clip(*_):
        detail.clear_output(wait=True)
        with detail:
            errors = state.get("errors")
            if errors is None or errors.empty or not clip_box.value:
                print("no clip selected")
                return
            row = clip_details(errors, clip_box.value)
            facts = ["file_name", "machine", "section", "domain", "label", "attributes", "error", "n_wrong",
                     "share_wrong", *[c for c in HIDDEN_TRUTH_COLUMNS if c in row.index]]
            display(row[[f for f in facts if f in row.index]].to_frame("value"))
            ranks = row[[c for c in row.index if c.startswith("rank:")]]
            display(ranks.rename(lambda c: c.split(":", 1)[1]).to_frame("rank-normalised score").round(3))
            if isinstance(row.get("path"), str) and os.path.isfile(row["path"]):
                fig, wave = clip_figure(row["path"], title=f"{row['file_name']} ({row['domain']}, {row['label']})")
                display(Audio(wave, rate=16000, normalize=False))
                plt.show()
                plt.close(fig)

    machine_box.observe(refresh, names="value")
    system_box.observe(refresh, names="value")
    clip_box.observe(show_clip, names="value")
    refresh()
    return widgets.VBox([machine_box, system_box, overview, clip_box, detail])
