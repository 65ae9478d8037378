"""Error analysis across systems: which test clips most systems get wrong, and what those clips are.

Works from the per-clip submission files every notebook writes (read with
:func:`asd_utils.evaluation.bootstrap.read_clip_scores`) and the data index of the test clips.

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

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import HTML, Audio
from matplotlib.collections import PatchCollection
from matplotlib.patches import Rectangle

from asd_utils.notebook.context import output_item, show_in
from asd_utils.notebook.tour import clip_figure

__all__ = [
    "RANK_RULE",
    "DECISION_FILES",
    "WRONG_DEFINITION",
    "clip_details",
    "clip_rank_figure",
    "clip_table",
    "default_systems",
    "error_rates",
    "error_table",
    "explorer",
    "load_hidden_truth",
    "rank_heatmap",
    "rank_normalise",
    "rank_thresholds",
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

    clip_scores: :func:`asd_utils.evaluation.bootstrap.read_clip_scores` rows; machine: machine type;
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


def rank_thresholds(table: pd.DataFrame) -> pd.DataFrame:
    """Each system's decision threshold on the rank scale, per section.

    table: :func:`clip_table` output. A system decides a clip anomalous when its score passes its
    threshold, so in a section the clips it decides normal are the lowest-ranked ones: its
    threshold sits at the share of the section's clips it decides normal (a clip ranked above it
    is decided anomalous). Returns a (sections, systems) DataFrame of values in [0, 1]; 0.5 for the
    rank rule. Only for display: nothing is scored or chosen with it.
    """
    systems = _systems_of(table)
    decided_normal = table[[f"decision:{s}" for s in systems]].eq(0).astype(np.float64)
    decided_normal.columns = systems
    return decided_normal.groupby(table["section"].to_numpy()).mean()


def default_systems(labels, ranking=None) -> list[str]:
    """A small first selection for the explorer: the best system overall, the best autoencoder
    (notebook 01) and the best system of every other notebook.

    labels: :func:`system_label` strings (``"02 System-1"``); ranking: ``{label: official score}``
    from the recorded results (higher = better); without it, each notebook's first system. The
    choice is only what is displayed first; it shapes no score.
    """
    labels = list(dict.fromkeys(labels))
    score = dict(ranking or {})
    ordered = sorted(labels, key=lambda s: -score.get(s, -np.inf)) if score else labels
    chosen = [ordered[0]] if ordered else []
    for label in ordered:
        notebook = label.split(" ", 1)[0]
        if not any(c.split(" ", 1)[0] == notebook for c in chosen):
            chosen.append(label)
    return sorted(chosen, key=labels.index)


EXPLORER_CACHE_ITEMS = 64  # selections, clips and charts the explorer keeps drawn (a few MB of PNG)
HEATMAP_FONT_PT = 9  # every label of the explorer's figures; 9 pt >= 9 px at any dpi >= 72
HEATMAP_WIDTH_IN = 10.5  # not wider than an output area (about 1,000 px at 90-100 dpi): never squeezed


def rank_heatmap(table: pd.DataFrame, *, title: str = "", caveat: str = ""):
    """Figure: rank-normalised score of every clip (columns, grouped by domain x label, the clips of
    a group ordered by their mean rank) under every system (rows), each system's wrong decisions
    outlined. Systems are rows so that their labels read horizontally at 9 pt however many there
    are: the width is fixed (:data:`HEATMAP_WIDTH_IN`), the height grows with the systems.
    Returns the figure."""

    systems = _systems_of(table)
    ordered = table.assign(_m=table[[f"rank:{s}" for s in systems]].mean(axis=1)).sort_values(
        ["domain", "label", "_m"], kind="mergesort")
    values = ordered[[f"rank:{s}" for s in systems]].to_numpy(dtype=np.float64).T  # (systems, clips)
    bottom_in = 0.8 + (0.2 if caveat else 0.0)  # two-line group labels, the axis label, the caveat
    top_in = 0.45 + 0.17 * str(title).count("\n")
    body_in = 0.26 * max(len(systems), 2)
    fig, ax, colorbar_ax = _fixed_axes(HEATMAP_WIDTH_IN, top_in + body_in + bottom_in, systems, top_in=top_in,
                                       bottom_in=bottom_in)
    image = ax.imshow(values, aspect="auto", cmap="coolwarm", vmin=0.0, vmax=1.0, interpolation="nearest")
    anomalous = (ordered["label"] == "anomaly").to_numpy()
    decisions = ordered[[f"decision:{s}" for s in systems]].to_numpy(dtype=np.float64).T
    wrong = np.where(anomalous[None, :], decisions == 0, decisions == 1)
    # one collection, not one patch per cell: thousands of add_patch calls took seconds per figure
    outlines = [Rectangle((j - 0.5, i - 0.5), 1, 1) for i, j in zip(*np.nonzero(wrong))]
    ax.add_collection(PatchCollection(outlines, facecolor="none", edgecolor="black", linewidth=0.6))
    cells = (ordered["domain"] + " " + ordered["label"]).to_numpy()
    starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    for start in starts[1:]:
        ax.axvline(start - 0.5, color="black", lw=1.2)
    ax.set_xticks(starts + (np.diff(np.r_[starts, len(cells)]) - 1) / 2)
    ax.set_xticklabels([c.replace(" ", "\n") for c in cells[starts]], fontsize=HEATMAP_FONT_PT)
    ax.tick_params(axis="x", length=0)
    ax.set_yticks(range(len(systems)))
    ax.set_yticklabels(systems, fontsize=HEATMAP_FONT_PT)
    ax.set_xlabel("test clips (grouped by domain and label; within a group, by mean rank)", fontsize=HEATMAP_FONT_PT)
    ax.set_title(title, fontsize=HEATMAP_FONT_PT + 1)
    bar = fig.colorbar(image, cax=colorbar_ax)
    bar.set_label("rank (1 = most\nanomalous)", fontsize=HEATMAP_FONT_PT)
    bar.ax.tick_params(labelsize=HEATMAP_FONT_PT)
    if caveat:
        fig.text(0.01, 0.08 / fig.get_size_inches()[1], caveat, fontsize=8, color="grey", ha="left", va="bottom")
    return fig


def _fixed_axes(width_in: float, height_in: float, row_labels, *, top_in: float, bottom_in: float,
                colorbar: bool = True):
    """A figure with one axes placed by hand (margins in inches: the row labels' length at 9 pt on
    the left, a colour bar on the right) and ``fig.fixed_layout = True``: drawing it needs no layout
    pass, which halves a widget's redraw. Returns (figure, axes, colour-bar axes or None)."""

    longest = max((len(str(label)) for label in row_labels), default=4)
    left_in = 0.3 + 0.075 * longest
    right_in = 1.25 if colorbar else 0.3
    fig = plt.figure(figsize=(width_in, height_in))
    fig.fixed_layout = True
    plot_width = (width_in - left_in - right_in) / width_in
    box = (left_in / width_in, bottom_in / height_in, plot_width, (height_in - top_in - bottom_in) / height_in)
    ax = fig.add_axes(box)
    colorbar_ax = fig.add_axes((box[0] + plot_width + 0.12 / width_in, box[1], 0.15 / width_in, box[3])) \
        if colorbar else None
    return fig, ax, colorbar_ax


def clip_rank_figure(row: pd.Series, thresholds: pd.DataFrame):
    """Figure: one clip's rank under every system (bars) with each system's decision threshold on
    the rank scale (black tick, :func:`rank_thresholds` of the clip's section); a bar is red where
    the system's decision on this clip is wrong. Shows why a clip can rank near 1 and still be
    "wrong": its rank does not pass that system's threshold."""

    systems = [c.split(":", 1)[1] for c in row.index if c.startswith("rank:")]
    ranks = np.array([row[f"rank:{s}"] for s in systems], dtype=np.float64)
    anomalous = row["label"] == "anomaly"
    decisions = np.array([row[f"decision:{s}"] for s in systems], dtype=np.float64)
    wrong = decisions == 0 if anomalous else decisions == 1
    limits = thresholds.loc[row["section"], systems].to_numpy(dtype=np.float64)
    top_in, bottom_in = 0.4, 0.6
    fig, ax, _ = _fixed_axes(9.0, top_in + 0.32 * max(len(systems), 1) + bottom_in, systems, top_in=top_in,
                             bottom_in=bottom_in, colorbar=False)
    y = np.arange(len(systems))
    ax.barh(y, ranks, color=np.where(wrong, "#d6604d", "#8fbbd9"), height=0.6)
    ax.scatter(limits, y, marker="|", s=300, color="black", linewidths=2, label="decision threshold", zorder=3)
    ax.set_yticks(y)
    ax.set_yticklabels(systems, fontsize=HEATMAP_FONT_PT)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("rank among the section's test clips (1 = most anomalous); red: decision wrong",
                  fontsize=HEATMAP_FONT_PT)
    ax.tick_params(labelsize=HEATMAP_FONT_PT)
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, borderaxespad=0.1)
    ax.set_title(f"{row['domain']} {row['label']}: rank and threshold per system", fontsize=HEATMAP_FONT_PT,
                 loc="left")
    return fig


WRONG_DEFINITION = (
    "<b>wrong</b> = the system's own decision disagrees with the truth: a normal clip it flags (false "
    "alarm) or an anomaly it lets through (missed anomaly). The decision is the system's submitted one: "
    "its threshold comes from its training scores, not from its ranking of the test clips. So a clip can "
    "rank near 1 (most anomalous) and still be missed, when the system's threshold lies above it: the "
    "clip's rank chart marks each threshold on the rank scale."
)


def _rules_html(rules: dict[str, str]) -> str:
    by_rule: dict[str, list[str]] = {}
    for system, rule in rules.items():
        by_rule.setdefault(rule, []).append(system)
    parts = []
    for rule, systems in by_rule.items():
        who = "every system shown" if len(systems) == len(rules) else ", ".join(systems)
        parts.append(f"<b>{rule}</b>: {who}")
    return "Decision rule: " + "; ".join(parts)


def _table_html(frame: pd.DataFrame) -> str:
    """A DataFrame as HTML in a box that scrolls sideways instead of overflowing the page."""
    return ('<div style="overflow-x:auto; max-width:100%">' + frame.to_html(index=False, float_format="{:.3f}".format)
            + "</div>")


def explorer(clip_scores: pd.DataFrame, index: pd.DataFrame, *, truth: pd.DataFrame | None = None,
             machine: str | None = None, systems=None, ranking=None, top: int = 15, caveat: str = ""):
    """Widgets: pick a machine type and systems; see every clip's rank under every system, pick a
    clip (the one most systems get wrong first) to hear it, see its spectrogram, its rank and each
    system's threshold, its domain, attributes and (synthetic data) hidden truth; last, the clips
    most systems get wrong.

    clip_scores: :func:`asd_utils.evaluation.bootstrap.read_clip_scores` rows; index: the data index
    (``discover``) with the clips' paths; truth: :func:`load_hidden_truth` output or None;
    machine: the initial machine type (default: the first); systems: the initial selection
    (default: :func:`default_systems` with ``ranking``, a ``{label: official score}`` of the recorded
    results); top: rows of the most-wrong list; caveat: text shown above every view (synthetic data,
    stand-in backbones).

    Returns an ipywidgets ``VBox`` with one ``Output`` per pane (attributes ``heatmap``, ``clip_view``,
    ``clip_facts``, ``top_clips``; controls ``machine``, ``systems``, ``clip``). Every pane is replaced
    in one step with its figures as PNG data (:func:`asd_utils.notebook.context.show_in`), never through
    ``plt.show()``, and drawn once per change; ``draws`` counts the draws of each pane. It is filled at
    once with the default selection, so it renders under papermill and in the saved notebook.
    """


    labelled = clip_scores[clip_scores["label"].notna()]
    machines = sorted(labelled["machine"].unique())
    if not machines:
        return widgets.HTML("No labelled per-clip scores to explore.")
    all_systems = list(dict.fromkeys(system_label(n, s) for n, s in zip(labelled["notebook"], labelled["system"])))
    first = [s for s in (systems or default_systems(all_systems, ranking)) if s in all_systems] or all_systems[:1]
    machine_box = widgets.Dropdown(options=machines, value=machine if machine in machines else machines[0],
                                   description="machine")
    system_box = widgets.SelectMultiple(options=all_systems, value=tuple(first), rows=min(8, len(all_systems)),
                                        description="systems", layout=widgets.Layout(width="60%"))
    clip_box = widgets.Dropdown(description="clip", layout=widgets.Layout(width="95%"))
    header = widgets.HTML((f"<p>{caveat}</p>" if caveat else "") + f"<p>{WRONG_DEFINITION}</p>")
    rules_line = widgets.HTML()
    heatmap, clip_view, clip_facts, top_clips = (widgets.Output() for _ in range(4))
    box = widgets.VBox([header, widgets.HBox([machine_box, system_box]), rules_line, heatmap, clip_box, clip_view,
                        clip_facts, widgets.HTML(f"<b>The {top} clips most of these systems get wrong</b>"),
                        top_clips])
    # CSS classes name the parts for the browser test (tests/browser) and for a reader's own styling
    box.add_class("asd-explorer")
    for name, part in (("machine", machine_box), ("systems", system_box), ("clip", clip_box)):
        part.add_class(f"asd-control-{name}")
    for name, part in (("heatmap", heatmap), ("clip", clip_view), ("facts", clip_facts), ("top", top_clips)):
        part.add_class(f"asd-pane-{name}")
    box.machine, box.systems, box.clip = machine_box, system_box, clip_box
    box.heatmap, box.clip_view, box.clip_facts, box.top_clips = heatmap, clip_view, clip_facts, top_clips
    box.draws = {"heatmap": 0, "clip": 0}
    state: dict = {}
    # what a selection computes and draws, kept for when the reader comes back to it (bounded)
    cache: dict = {}

    def cached(key, make):
        if key not in cache:
            if len(cache) >= EXPLORER_CACHE_ITEMS:
                cache.pop(next(iter(cache)))
            cache[key] = make()
        return cache[key]

    def tables(machine_name, chosen):
        table, rules = clip_table(clip_scores, machine_name, systems=chosen, index=index, truth=truth)
        n_systems = len(_systems_of(table))
        errors = error_table(table) if n_systems else table.iloc[:0]
        return table, rules, errors, rank_thresholds(table) if n_systems else None

    def refresh(*_):
        chosen = tuple(system_box.value)
        selection = (machine_box.value, chosen)
        table, rules, errors, thresholds = cached(("tables", *selection),
                                                  lambda: tables(machine_box.value, list(chosen)))
        n_systems = len(_systems_of(table))
        state.update(errors=errors, thresholds=thresholds, selection=selection)
        options = [(f"{row.n_wrong}/{n_systems} systems wrong ({row.error}) · rank {row.mean_rank:.2f} · "
                    f"{row.domain} · {row.file_name}", row.file_name) for row in errors.itertuples()]
        clip_box.unobserve(show_clip, names="value")
        try:
            clip_box.options = options
            clip_box.value = options[0][1] if options else None  # the clip most systems get wrong
        finally:
            clip_box.observe(show_clip, names="value")
        box.draws["heatmap"] += 1
        if errors.empty:
            rules_line.value = ""
            show_in(heatmap, "no selected system scored this machine type")
            show_in(top_clips)
        else:
            rules_line.value = _rules_html(rules)
            show_in(heatmap, cached(("heatmap", *selection), lambda: output_item(rank_heatmap(
                table, title=f"{machine_box.value}: rank of every test clip under each system (outlined: decision "
                             "wrong)"))))
            shown = ["file_name", "domain", "label", "error", "n_wrong", "mean_rank",
                     *[c for c in ("attributes", *HIDDEN_TRUTH_COLUMNS) if c in errors.columns]]
            show_in(top_clips, HTML(_table_html(errors[shown].head(top))))
        show_clip()

    def show_clip(*_):
        box.draws["clip"] += 1
        errors = state.get("errors")
        if errors is None or errors.empty or not clip_box.value:
            show_in(clip_view, "no clip selected")
            show_in(clip_facts)
            return
        row = clip_details(errors, clip_box.value)
        facts = ["file_name", "machine", "section", "domain", "label", "attributes", "error", "n_wrong",
                 "share_wrong", *[c for c in HIDDEN_TRUTH_COLUMNS if c in row.index]]
        listed = row[[f for f in facts if f in row.index]].to_frame("value").reset_index(names="fact")
        view = []
        path = row.get("path")
        if isinstance(path, str) and os.path.isfile(path):
            def draw_clip():
                fig, wave = clip_figure(path, title=f"{row['file_name']} ({row['domain']}, {row['label']})")
                return [output_item(Audio(wave, rate=16000, normalize=False)), output_item(fig)]

            view = cached(("clip", path), draw_clip)
        else:
            view = [f"audio not found: {path}"]
        show_in(clip_view, *view)
        ranks = cached(("ranks", *state["selection"], row["file_name"]),
                       lambda: output_item(clip_rank_figure(row, state["thresholds"])))
        show_in(clip_facts, ranks, HTML(_table_html(listed)))

    machine_box.observe(refresh, names="value")
    system_box.observe(refresh, names="value")
    clip_box.observe(show_clip, names="value")
    refresh()
    return box
