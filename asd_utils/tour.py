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
    """Waveform and log-mel spectrogram of one clip on one time axis; returns (figure, waveform).

    The two panels share the x axis (seconds) and have the same width: the spectrogram's colour
    bar gets its own narrow column instead of taking width from the spectrogram. Each log-mel
    frame is drawn centred on its time (frame t at ``t * hop / 16000`` s, the centred STFT).
    """
    import matplotlib.pyplot as plt

    wave = load_audio(path)
    duration = max(len(wave), 1) / 16000
    fig = plt.figure(figsize=(8, 4.6), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 2], width_ratios=[40, 1])
    wave_ax = fig.add_subplot(grid[0, 0])
    mel_ax = fig.add_subplot(grid[1, 0], sharex=wave_ax)
    colorbar_ax = fig.add_subplot(grid[1, 1])
    fig.add_subplot(grid[0, 1]).axis("off")  # keeps the waveform as wide as the spectrogram
    wave_ax.plot(np.arange(len(wave)) / 16000, wave, lw=0.4)
    wave_ax.set_ylabel("amplitude")
    wave_ax.set_title(title, fontsize=9)
    wave_ax.tick_params(labelbottom=False)
    mel = log_mel(wave).numpy()
    hop_seconds = 512 / 16000
    image = mel_ax.imshow(mel, origin="lower", aspect="auto", cmap="magma",
                          extent=(-hop_seconds / 2, (mel.shape[1] - 0.5) * hop_seconds, 0, mel.shape[0]))
    mel_ax.set_xlim(0, duration)
    mel_ax.set_xlabel("time (s)")
    mel_ax.set_ylabel("mel bin")
    fig.colorbar(image, cax=colorbar_ax, label="dB")
    return fig, wave


def _figure_png(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def clip_browser(index: pd.DataFrame):
    """Widgets to pick machine type, domain, label and clip, then play and look at it.

    Returns an ipywidgets ``VBox`` whose controls are also attributes (``machine``, ``domain``,
    ``label``, ``clip``, ``out``). A clip is always selected when one matches: at start and
    whenever machine type, domain or label change, the first matching clip is selected
    (ipywidgets 8 leaves a dropdown's value at None when its options are replaced). The shown
    clip's figure and ``Audio`` are kept in ``browser.rendered`` (``{"path", "figure",
    "audio"}``, None when no clip matches). Audio plays with ``normalize=False`` so loudness
    differences between clips are heard as they are. The output is written with
    ``Output.append_display_data`` (the figure as a PNG), so it renders under papermill and in
    a saved notebook without a live kernel.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import Audio, Image

    labelled = index[index["split"].isin(["train", "test"])]
    machines = sorted(labelled["machine"].unique())
    machine = widgets.Dropdown(options=machines, value=machines[0] if machines else None, description="machine")
    domain = widgets.ToggleButtons(options=["source", "target"], value="source", description="domain")
    label = widgets.ToggleButtons(options=["normal", "anomaly"], value="normal", description="label")
    clip = widgets.Dropdown(description="clip", layout=widgets.Layout(width="70%"))
    out = widgets.Output()
    browser = widgets.VBox([machine, domain, label, clip, out])

    def show(*_):
        out.outputs = ()
        if clip.value is None:
            browser.rendered = None
            out.append_stdout("no clip with this machine / domain / label\n")
            return
        fig, wave = clip_figure(clip.value, title=str(clip.label))
        audio = Audio(wave, rate=16000, normalize=False)
        image = Image(data=_figure_png(fig), format="png")
        plt.close(fig)
        out.append_display_data(audio)
        out.append_display_data(image)
        browser.rendered = {"path": clip.value, "figure": fig, "audio": audio}

    def refresh_clips(*_):
        rows = labelled[(labelled["machine"] == machine.value) & (labelled["domain"] == domain.value)
                        & (labelled["label"] == label.value)]
        options = [(name, path) for name, path in zip(rows["file_name"], rows["path"])]
        clip.unobserve(show, names="value")
        try:
            clip.options = options
            clip.value = options[0][1] if options else None
        finally:
            clip.observe(show, names="value")
        show()

    for control in (machine, domain, label):
        control.observe(refresh_clips, names="value")
    clip.observe(show, names="value")
    browser.machine, browser.domain, browser.label, browser.clip, browser.out = machine, domain, label, clip, out
    refresh_clips()
    return browser


def pick_normal_anomalous(index: pd.DataFrame, machines=None, *, per_machine: int = 1, seed: int = 0) -> pd.DataFrame:
    """For each machine type, ``per_machine`` random normal and anomalous *source-domain* test clips.

    Machine types without a labelled source normal and anomaly (e.g. blinded evaluation data) are
    skipped. Returns the picked index rows with their ``machine`` and ``label`` (normal first).
    """
    test = index[(index["split"] == "test") & index["label"].notna() & (index["domain"] == "source")]
    machines = list(machines or sorted(test["machine"].unique()))
    rng = np.random.default_rng(seed)
    picks = []
    for machine in machines:
        groups = [test[(test["machine"] == machine) & (test["label"] == label)] for label in ("normal", "anomaly")]
        if any(len(rows) == 0 for rows in groups):
            continue
        for rows in groups:
            chosen = rng.choice(len(rows), size=min(per_machine, len(rows)), replace=False)
            picks.append(rows.iloc[np.sort(chosen)])
    if not picks:
        raise ValueError("no machine type has labelled source-domain normal and anomalous test clips")
    return pd.concat(picks)


def normal_vs_anomalous(index: pd.DataFrame, machines=None, *, seed: int = 0):
    """Figure: for each machine type, a normal and an anomalous source-domain test clip's log-mel
    side by side (the same colour scale within a row); clips from :func:`pick_normal_anomalous`."""
    import matplotlib.pyplot as plt

    picks = pick_normal_anomalous(index, machines, per_machine=1, seed=seed)
    machines = list(dict.fromkeys(picks["machine"]))
    fig, axes = plt.subplots(len(machines), 2, figsize=(9, 2.0 * len(machines)), squeeze=False)
    for row, machine in enumerate(machines):
        rows = picks[picks["machine"] == machine]
        mels = [log_mel(load_audio(path)).numpy() for path in rows["path"]]
        vmin = min(m.min() for m in mels)
        vmax = max(m.max() for m in mels)
        for col, (mel, pick) in enumerate(zip(mels, rows.itertuples())):
            ax = axes[row, col]
            ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax)
            ax.set_title(f"{machine} {pick.label} (source): {pick.file_name}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig
