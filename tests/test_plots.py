"""Shared figures (asd_utils.notebook.plots): legends beside the data, readable text, the reduced
P(A beats B) view."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from asd_utils.notebook import plots  # noqa: E402


def _legend_right_of_axes(fig, ax):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend()
    assert legend is not None
    return legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1


def test_reported_vs_reproduced_legend_never_covers_the_points():
    systems = [f"System {k}" for k in range(14)]  # report 004's count
    table = pd.DataFrame([{"system": s, "metric": m, "reported": 60 + k, "reproduced": 55 + k}
                          for k, s in enumerate(systems) for m in ("AUC-s", "AUC-t", "pAUC")])
    fig = plots.reported_vs_reproduced(table, title="004")
    assert _legend_right_of_axes(fig, fig.axes[0])
    plt.close(fig)


def test_score_distribution_and_roc_legends_sit_beside_the_axes():
    test_index = pd.DataFrame({"domain": ["source", "target"] * 20, "label": ["normal"] * 20 + ["anomaly"] * 20,
                               "is_anomaly": [0.0] * 20 + [1.0] * 20})
    scores = np.r_[np.linspace(0, 1, 20), np.linspace(0.5, 1.5, 20)]
    fig = plots.score_distributions(scores, test_index)
    assert _legend_right_of_axes(fig, fig.axes[0])
    plt.close(fig)
    fig = plots.roc_curves({"A": scores, "B": -scores}, test_index)
    assert _legend_right_of_axes(fig, fig.axes[1])
    plt.close(fig)


def test_versus_references_and_best_of_groups():
    labels = ["01 AE", "02 S1", "02 S2", "03 X"]
    matrix = pd.DataFrame([[0.5, 0.9, 0.2, 0.6], [0.03, 0.5, 0.3, 0.4], [0.8, 0.7, 0.5, 0.97], [0.4, 0.6, 0.03, 0.5]],
                          index=labels, columns=labels)
    scores = {"01 AE": 0.6, "02 S1": 0.55, "02 S2": 0.7, "03 X": 0.5}
    best = plots.best_of_groups(scores, lambda label: label[:2])
    assert best == {"01 AE": "01 AE", "02 S1": "02 S2", "02 S2": "02 S2", "03 X": "03 X"}
    frame = plots.versus_references(matrix, {"vs 01 AE": dict.fromkeys(labels, "01 AE"), "vs best": best,
                                             "vs nobody": {}})
    assert frame["vs 01 AE"].tolist() == [0.5, 0.03, 0.8, 0.4]
    assert frame["vs best"].tolist() == [0.5, 0.3, 0.5, 0.5]
    assert frame["vs nobody"].isna().all()
    fig = plots.probability_heatmap(frame.drop(columns="vs nobody"), level=0.95)
    ax = fig.axes[0]
    texts = [t for t in ax.texts]
    assert [t.get_text() for t in texts] == ["50", "50", "3", "30", "80", "50", "40", "50"]
    assert min(t.get_fontsize() for t in [*texts, *ax.get_xticklabels(), *ax.get_yticklabels()]) >= 9
    # bold only where the difference is real at the 95 % level (3 % <= 5 %)
    assert [t.get_text() for t in texts if t.get_fontweight() == "bold"] == ["3"]
    plt.close(fig)


@pytest.mark.parametrize("n_systems", [3, 44])
def test_bar_per_machine_legend_outside(n_systems):
    tidy = pd.DataFrame([{"system": f"S{k}", "machine": m, "hmean": 0.5 + 0.01 * k}
                         for k in range(n_systems) for m in ("fan", "valve")])
    fig = plots.bar_per_machine(tidy)
    assert _legend_right_of_axes(fig, fig.axes[0])
    plt.close(fig)


def test_percent_heatmap_keeps_every_label_readable_and_horizontal():
    pairs = ["source normals\nvs source anomalies", "target normals\nvs source anomalies"]
    frame = pd.DataFrame([[46.4, 35.0], [41.0, 24.2]], index=["01 AE-MSE *", "01 AE-MAHALA *"], columns=pairs)
    fig = plots.percent_heatmap(frame, label="AUC (%)", title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["46", "35", "41", "24"]
    ticks = ax.get_xticklabels()
    assert [t.get_text() for t in ticks] == pairs and all(t.get_rotation() == 0 for t in ticks)
    assert min(t.get_fontsize() for t in [*ax.texts, *ticks, *ax.get_yticklabels()]) >= 9
    fig.canvas.draw()  # neighbouring column labels do not overlap
    renderer = fig.canvas.get_renderer()
    first, second = (t.get_window_extent(renderer) for t in ticks)
    assert first.x1 < second.x0
    plt.close(fig)
