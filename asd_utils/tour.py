"""Helpers of the dataset tour (notebook 00): clip browser widgets and domain-shift views."""

from __future__ import annotations

import numpy as np
import pandas as pd

from asd_utils.data import load_audio
from asd_utils.features import log_mel


def attribute_counts(index: pd.DataFrame) -> pd.DataFrame:
    """Training clips per machine type, domain and attribute string (``noAttribute`` kept)."""
    train = index[index["split"] == "train"]
    return (
        train.groupby(["machine", "domain", "attributes"], dropna=False).size().rename("clips").reset_index()
    )


def logmel_statistics(waves: np.ndarray, *, n_mels: int = 64) -> np.ndarray:
    """Per-clip summary of the log-mel: mean and standard deviation over time of each mel bin.

    waves: (clips, samples) at 16 kHz -> (clips, 2 * n_mels) in dB.
    """
    mel = log_mel(waves, n_mels=n_mels)  # (clips, n_mels, frames)
    return np.concatenate([mel.mean(dim=2).numpy(), mel.std(dim=2).numpy()], axis=1)


def clip_figure(path: str, *, title: str = ""):
    """Waveform and log-mel spectrogram of one clip; returns (figure, waveform)."""
    import matplotlib.pyplot as plt

    from asd_utils.plots import spectrogram

    wave = load_audio(path)
    fig, axes = plt.subplots(2, 1, figsize=(8, 4.6), gridspec_kw={"height_ratios": [1, 2]})
    time = np.arange(len(wave)) / 16000
    axes[0].plot(time, wave, lw=0.4)
    axes[0].set_xlim(0, time[-1] if len(time) else 1)
    axes[0].set_ylabel("amplitude")
    axes[0].set_title(title, fontsize=9)
    spectrogram(axes[1], log_mel(wave).numpy())
    fig.tight_layout()
    return fig, wave


def clip_browser(index: pd.DataFrame):
    """Widgets to pick machine type, domain, label and clip, then play and look at it.

    Returns an ipywidgets ``VBox``. Audio plays with ``normalize=False`` so loudness differences
    between clips are heard as they are. Under papermill the widgets show their default state.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import Audio, display

    labelled = index[index["split"].isin(["train", "test"])]
    machine = widgets.Dropdown(options=sorted(labelled["machine"].unique()), description="machine")
    domain = widgets.ToggleButtons(options=["source", "target"], description="domain")
    label = widgets.ToggleButtons(options=["normal", "anomaly"], description="label")
    clip = widgets.Dropdown(description="clip", layout=widgets.Layout(width="70%"))
    out = widgets.Output()

    def refresh_clips(*_):
        rows = labelled[(labelled["machine"] == machine.value) & (labelled["domain"] == domain.value)
                        & (labelled["label"] == label.value)]
        clip.options = [(name, path) for name, path in zip(rows["file_name"], rows["path"])]

    def show(*_):
        out.clear_output(wait=True)
        with out:
            if not clip.value:
                print("no clip with this machine / domain / label")
                return
            fig, wave = clip_figure(clip.value, title=str(clip.label))
            display(Audio(wave, rate=16000, normalize=False))
            plt.show()

    for control in (machine, domain, label):
        control.observe(refresh_clips, names="value")
    clip.observe(show, names="value")
    refresh_clips()
    show()
    return widgets.VBox([machine, domain, label, clip, out])


def normal_vs_anomalous(index: pd.DataFrame, machines=None, *, per_machine: int = 1, seed: int = 0):
    """Figure: for each machine type, a normal and an anomalous source-domain test clip's log-mel
    side by side (the same colour scale within a row)."""
    import matplotlib.pyplot as plt

    test = index[(index["split"] == "test") & index["label"].notna()]
    machines = list(machines or sorted(test["machine"].unique()))
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(machines), 2, figsize=(9, 2.0 * len(machines)), squeeze=False)
    for row, machine in enumerate(machines):
        mels = []
        names = []
        for label in ("normal", "anomaly"):
            rows = test[(test["machine"] == machine) & (test["label"] == label)]
            pick = rows.iloc[int(rng.integers(len(rows)))]
            mels.append(log_mel(load_audio(pick["path"])).numpy())
            names.append(f"{machine} {label}: {pick['file_name']}")
        vmin = min(m.min() for m in mels)
        vmax = max(m.max() for m in mels)
        for col, (mel, name) in enumerate(zip(mels, names)):
            ax = axes[row, col]
            ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax)
            ax.set_title(name, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig
