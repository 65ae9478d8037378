"""Figures shared by the notebooks (matplotlib/seaborn; each function returns the Figure)."""

from __future__ import annotations

import matplotlib

matplotlib.use(matplotlib.get_backend())  # keep the notebook's backend; headless runs use Agg
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import roc_curve  # noqa: E402

METRIC_LABELS = {"auc_source": "AUC-s", "auc_target": "AUC-t", "pauc": "pAUC", "hmean": "hmean"}
LABEL_PT = 9  # smallest text of a figure: 9 pt is 9 px or more at any display resolution of 72 dpi or more


def legend_outside(ax, *, ncols: int = 1, title: str | None = None) -> None:
    """Move the axes' legend beside the plot (right of it, top-aligned), so it never covers data."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              frameon=False, ncols=ncols, title=title, title_fontsize=8)


def score_distributions(scores, test_index: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """Histogram of scores per domain and label. scores: (clips,) aligned with ``test_index``."""
    frame = test_index[["domain", "label"]].copy()
    frame["score"] = np.asarray(scores, dtype=float)
    frame["group"] = frame["domain"].astype(str) + " / " + frame["label"].astype(str)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.histplot(frame, x="score", hue="group", element="step", stat="density", common_norm=False, ax=ax,
                 bins=20)
    ax.set_title(title or "anomaly scores by domain and label")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8, title=None)
    fig.tight_layout()
    return fig


def roc_curves(scores_by_system: dict[str, np.ndarray], test_index: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """ROC curves per system for the source and the target domain, with the official
    definition: each domain's normal clips against ALL anomalous clips of the section."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    anomalous = test_index["is_anomaly"].to_numpy() == 1
    for ax, domain in zip(axes, ("source", "target")):
        mask = anomalous | (test_index["domain"].to_numpy() == domain)
        for system, scores in scores_by_system.items():
            fpr, tpr, _ = roc_curve(anomalous[mask], np.asarray(scores)[mask])
            ax.plot(fpr, tpr, label=system)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        ax.axvline(0.1, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{domain} normals vs all anomalies")
        ax.set_xlabel("false positive rate")
    axes[0].set_ylabel("true positive rate")
    legend_outside(axes[1])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def bar_per_machine(tidy: pd.DataFrame, *, metric: str = "hmean", systems=None, title: str = "") -> plt.Figure:
    """Grouped bars: one group per machine type, one bar per system. tidy: per-machine results
    (fractions); ``metric`` in auc_source, auc_target, pauc, hmean."""
    frame = tidy if systems is None else tidy[tidy["system"].isin(systems)]
    frame = frame.groupby(["system", "machine"], sort=False)[metric].mean().reset_index()
    frame[metric] = 100 * frame[metric]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * frame["machine"].nunique() + 2), 3.6))
    sns.barplot(frame, x="machine", y=metric, hue="system", ax=ax)
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (%)")
    ax.set_xlabel("")
    ax.set_title(title)
    legend_outside(ax, ncols=1 if frame["system"].nunique() <= 12 else 2)
    fig.tight_layout()
    return fig


def reported_vs_reproduced(table: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """Scatter of reproduced vs reported values (percent) from ``reported.side_by_side``."""
    frame = table.dropna(subset=["reported", "reproduced"])
    n_entries = frame["system"].nunique() + frame["metric"].nunique() + 2
    ncols = 1 if n_entries <= 18 else 2
    fig, ax = plt.subplots(figsize=(4.6 + 2.4 * ncols, 4.2))
    sns.scatterplot(frame, x="reported", y="reproduced", hue="system", style="metric", ax=ax)
    lo = float(min(frame[["reported", "reproduced"]].min().min(), 40)) if len(frame) else 40
    ax.plot([lo, 100], [lo, 100], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("reported (%)")
    ax.set_ylabel("reproduced here (%)")
    ax.set_title(title, fontsize=LABEL_PT + 1)
    legend_outside(ax, ncols=ncols)
    fig.tight_layout()
    return fig


def versus_references(matrix: pd.DataFrame, references: dict[str, dict[str, str]]) -> pd.DataFrame:
    """P(system beats its reference) for a few references instead of the whole square matrix.

    matrix: (systems, systems) P(row beats column) (``BootstrapResult.prob_better``); references:
    ``{column name: {system: reference system}}`` (a system absent from a mapping gets NaN). Returns
    a (systems, references) DataFrame of probabilities in [0, 1] (0.5 for a system against itself).
    """
    out = pd.DataFrame(index=matrix.index, columns=list(references), dtype=np.float64)
    for column, reference_of in references.items():
        for system in matrix.index:
            reference = reference_of.get(system)
            if reference in matrix.columns:
                out.loc[system, column] = float(matrix.loc[system, reference])
    return out


def best_of_groups(scores: dict[str, float], group_of) -> dict[str, str]:
    """For every system, the best-scoring system of its group (e.g. its notebook).

    scores: ``{system: score}`` (higher = better); group_of: system -> group key."""
    best: dict = {}
    for system, score in scores.items():
        group = group_of(system)
        if group not in best or score > scores[best[group]]:
            best[group] = system
    return {system: best[group_of(system)] for system in scores}


def probability_heatmap(frame: pd.DataFrame, *, level: float = 0.95, title: str = "") -> plt.Figure:
    """Heat map of probabilities (systems x a few columns, :func:`versus_references`), values in
    percent in every cell, bold where a difference is real (P >= ``level`` or <= 1 - ``level``);
    9 pt text, the figure as tall as the systems need."""
    longest = max((len(str(label)) for label in frame.index), default=10)
    fig, ax = plt.subplots(figsize=(2.2 + 0.075 * longest + 1.9 * frame.shape[1], 2.4 + 0.3 * len(frame)))
    values = 100 * frame.to_numpy(dtype=np.float64)
    image = ax.imshow(values, cmap="RdBu_r", vmin=0, vmax=100, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isnan(values[i, j]):
                continue
            real = values[i, j] >= 100 * level or values[i, j] <= 100 * (1 - level)
            ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=LABEL_PT,
                    fontweight="bold" if real else "normal",
                    color="white" if abs(values[i, j] - 50) > 30 else "black")
    ax.set_xticks(range(frame.shape[1]))
    ax.set_xticklabels(frame.columns, fontsize=LABEL_PT)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(frame)))
    ax.set_yticklabels(frame.index, fontsize=LABEL_PT)
    ax.set_title(title, fontsize=LABEL_PT + 1)
    bar = fig.colorbar(image, ax=ax, orientation="horizontal", location="bottom", fraction=0.08, pad=0.04,
                       aspect=40)
    bar.set_label("P(system beats reference) (%); 50 = a coin toss", fontsize=LABEL_PT)
    bar.ax.tick_params(labelsize=LABEL_PT)
    fig.tight_layout()
    return fig


def embedding_2d(embeddings: np.ndarray, hue, *, style=None, method: str = "pca", title: str = "",
                 seed: int = 0) -> plt.Figure:
    """2-D projection (PCA or t-SNE) of embeddings (N, D), coloured by ``hue`` (N,) and
    marked by ``style`` (N,)."""

    x = np.asarray(embeddings, dtype=np.float64)
    if method == "tsne":
        perplexity = max(2.0, min(30.0, (len(x) - 1) / 3))
        xy = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(x)
    else:
        xy = PCA(n_components=2, random_state=seed).fit_transform(x)
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    sns.scatterplot(x=xy[:, 0], y=xy[:, 1], hue=np.asarray(hue), style=None if style is None else np.asarray(style),
                    ax=ax, s=22, alpha=0.8)
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def spectrogram(ax, logmel_db: np.ndarray, *, sample_rate: int = 16000, hop_length: int = 512,
                title: str = "") -> None:
    """Draw a log-mel spectrogram (n_mels, frames) in dB on ``ax``."""
    frames = logmel_db.shape[1]
    extent = (0, frames * hop_length / sample_rate, 0, logmel_db.shape[0])
    image = ax.imshow(logmel_db, origin="lower", aspect="auto", extent=extent, cmap="magma")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(image, ax=ax, label="dB", pad=0.01)


def percent_heatmap(frame: pd.DataFrame, *, label: str, title: str = "", center: float = 50.0) -> plt.Figure:
    """Heat map of percentages (systems x columns, e.g. machine types or domain pairs), each cell
    annotated; every text at :data:`LABEL_PT`, column labels on top and horizontal (a label may
    hold line breaks), the colour bar horizontal below with its ``label``. The figure grows with
    the rows and columns, so nothing is squeezed."""
    longest_row = max((len(str(r)) for r in frame.index), default=10)
    widest_column = max((max(len(line) for line in str(c).split("\n")) for c in frame.columns), default=6)
    column_in = max(0.7, 0.085 * widest_column)
    fig, ax = plt.subplots(figsize=(1.2 + 0.075 * longest_row + column_in * frame.shape[1],
                                    2.3 + 0.3 * len(frame) + 0.15 * str(title).count("\n")))
    sns.heatmap(frame, annot=True, fmt=".0f", cmap="RdYlBu", center=center, vmin=0, vmax=100, ax=ax,
                annot_kws={"fontsize": LABEL_PT},
                cbar_kws={"orientation": "horizontal", "location": "bottom", "fraction": 0.08, "pad": 0.04,
                          "aspect": 40})
    ax.xaxis.tick_top()
    ax.set_xticklabels([str(c) for c in frame.columns], fontsize=LABEL_PT, rotation=0)
    ax.tick_params(axis="y", labelsize=LABEL_PT)
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_title(title, fontsize=LABEL_PT + 1)
    bar = ax.collections[0].colorbar
    bar.set_label(label, fontsize=LABEL_PT)
    bar.ax.tick_params(labelsize=LABEL_PT)
    fig.tight_layout()
    return fig


def indicator_boxplots(indicators: dict[str, pd.DataFrame], test_index: pd.DataFrame, fitted: dict, names,
                       machines, *, title: str = "") -> plt.Figure:
    """Box plots of condition indicators of the test clips: one column per machine type of
    ``machines``, one row per indicator of ``names``; normal vs anomalous clips (test labels colour
    the figure only), each clip a dot, and a dashed line at the median of the normal training clips.

    ``indicators``: ``{machine: DataFrame (its test clips in test-index order) x indicator}``;
    ``fitted``: ``{machine: fitted mechanism scorer}`` with ``median_`` (``{domain: (F,) medians}``;
    the first domain's baseline is drawn) and ``feature_names_`` (F names). A machine type without
    labelled test clips (blinded evaluation clips) gets a note instead of boxes."""

    names, machines = list(names), list(machines)
    fig, axes = plt.subplots(len(names), len(machines), figsize=(2.2 * len(machines), 1.9 * len(names)),
                             squeeze=False)
    for j, m in enumerate(machines):
        labels = test_index.loc[test_index["machine"] == m, "label"].astype(str).to_numpy()
        for i, name in enumerate(names):
            ax = axes[i, j]
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(m, fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
            values = indicators[m][name].to_numpy()
            groups = [values[labels == lab] for lab in ("normal", "anomaly")]
            if not all(len(g) for g in groups):  # blinded evaluation clips: nothing to compare
                ax.text(0.5, 0.5, "no labelled\ntest clips", ha="center", va="center", fontsize=7,
                        transform=ax.transAxes)
                continue
            ax.boxplot(groups, showfliers=False)
            for k, g in enumerate(groups, start=1):
                ax.plot(np.full(len(g), k) + np.linspace(-0.15, 0.15, len(g)), g, ".", ms=2, alpha=0.5,
                        color="tab:blue" if k == 1 else "tab:red")
            baseline = next(iter(fitted[m].median_.values()))  # the (first) domain baseline
            ax.axhline(baseline[fitted[m].feature_names_.index(name)], color="grey", lw=0.8, ls="--")
            ax.set_xticks([1, 2], ["normal", "anomaly"], fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
