"""Figures shared by the notebooks (matplotlib/seaborn; each function returns the Figure)."""

from __future__ import annotations

import matplotlib

matplotlib.use(matplotlib.get_backend())  # keep the notebook's backend; headless runs use Agg
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

METRIC_LABELS = {"auc_source": "AUC-s", "auc_target": "AUC-t", "pauc": "pAUC", "hmean": "hmean"}


def score_distributions(scores, test_index: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """Histogram of scores per domain and label. scores: (clips,) aligned with ``test_index``."""
    frame = test_index[["domain", "label"]].copy()
    frame["score"] = np.asarray(scores, dtype=float)
    frame["group"] = frame["domain"].astype(str) + " / " + frame["label"].astype(str)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.histplot(frame, x="score", hue="group", element="step", stat="density", common_norm=False, ax=ax,
                 bins=20)
    ax.set_title(title or "anomaly scores by domain and label")
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
    axes[1].legend(fontsize=8, loc="lower right")
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
    ax.legend(fontsize=8, ncols=2)
    fig.tight_layout()
    return fig


def reported_vs_reproduced(table: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """Scatter of reproduced vs reported values (percent) from ``reported.side_by_side``."""
    frame = table.dropna(subset=["reported", "reproduced"])
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    sns.scatterplot(frame, x="reported", y="reproduced", hue="system", style="metric", ax=ax)
    lo = float(min(frame[["reported", "reproduced"]].min().min(), 40)) if len(frame) else 40
    ax.plot([lo, 100], [lo, 100], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("reported (%)")
    ax.set_ylabel("reproduced here (%)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def embedding_2d(embeddings: np.ndarray, hue, *, style=None, method: str = "pca", title: str = "",
                 seed: int = 0) -> plt.Figure:
    """2-D projection (PCA or t-SNE) of embeddings (N, D), coloured by ``hue`` (N,) and
    marked by ``style`` (N,)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

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
