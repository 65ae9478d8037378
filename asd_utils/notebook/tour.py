"""Helpers of the dataset tour (notebook 00): clip browser widgets and domain-shift views."""

from __future__ import annotations

import re
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Audio
from sklearn.decomposition import PCA

from asd_utils.data import load_audio, load_batch
from asd_utils.features.logmel import log_mel
from asd_utils.notebook.context import show_in


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
    frame is drawn centred on its time (frame t at ``t * hop / 16000`` s, the centred STFT). The
    axes sit at fixed places (``fig.fixed_layout``): no layout pass, so a widget redraws it fast.
    """

    wave = load_audio(path)
    duration = max(len(wave), 1) / 16000
    fig = plt.figure(figsize=(8, 4.6))
    width, height = fig.get_size_inches()
    left, plot_width = 0.85 / width, 1 - (0.85 + 0.9) / width  # inches of margin: labels left, colour bar right
    wave_ax = fig.add_axes((left, 0.66, plot_width, 0.26))
    mel_ax = fig.add_axes((left, 0.11, plot_width, 0.5), sharex=wave_ax)
    colorbar_ax = fig.add_axes((left + plot_width + 0.15 / width, 0.11, 0.15 / width, 0.5))
    fig.fixed_layout = True
    wave_ax.plot(*_envelope(wave, 4000), lw=0.4)
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


def _envelope(wave: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """(times in s, values) to draw a waveform with at most about ``points`` vertices: the samples
    themselves when few, else each bin's minimum and maximum in turn (the drawn outline is the same
    at screen resolution, and drawing it is many times faster)."""
    times = np.arange(len(wave)) / 16000
    if len(wave) <= points:
        return times, wave
    bins = points // 2
    usable = len(wave) - len(wave) % bins
    blocks = wave[:usable].reshape(bins, -1)
    t = times[:usable].reshape(bins, -1)
    values = np.stack([blocks.min(axis=1), blocks.max(axis=1)], axis=1).ravel()
    return np.repeat(t[:, [0, -1]].mean(axis=1), 2), values


CLIP_SPLITS = ("test", "train")


def clip_browser(index: pd.DataFrame):
    """Widgets to pick machine type, split, domain, label and clip, then play and look at it.

    Returns an ipywidgets ``VBox`` whose controls are also attributes (``machine``, ``split``,
    ``domain``, ``label``, ``clip``, ``out``). Training and test clips are listed apart (``split``;
    training clips are all normal, so ``label`` is fixed to normal and disabled for them). A clip
    is always selected when one matches: at start and whenever a control changes, the first
    matching clip is selected (ipywidgets 8 leaves a dropdown's value at None when its options are
    replaced), and the view is drawn once per change. The shown clip's figure and ``Audio`` are
    kept in ``browser.rendered`` (``{"path", "figure", "audio"}``, None when no clip matches).
    Audio plays with ``normalize=False`` so loudness differences between clips are heard as they
    are. The output is replaced in one step (:func:`asd_utils.notebook.context.show_in`: the audio player
    and the figure as a PNG), so the view never blanks, and it renders under papermill and in a
    saved notebook without a live kernel.
    """


    labelled = index[index["split"].isin(CLIP_SPLITS)]
    machines = sorted(labelled["machine"].unique())
    machine = widgets.Dropdown(options=machines, value=machines[0] if machines else None, description="machine")
    split = widgets.ToggleButtons(options=list(CLIP_SPLITS), value="test", description="split")
    domain = widgets.ToggleButtons(options=["source", "target"], value="source", description="domain")
    label = widgets.ToggleButtons(options=["normal", "anomaly"], value="normal", description="label")
    clip = widgets.Dropdown(description="clip", layout=widgets.Layout(width="70%"))
    out = widgets.Output()
    browser = widgets.VBox([machine, split, domain, label, clip, out])

    def show(*_):
        if clip.value is None:
            browser.rendered = None
            show_in(out, f"no {split.value} clip with this machine / domain / label")
            return
        fig, wave = clip_figure(clip.value, title=str(clip.label))
        audio = Audio(wave, rate=16000, normalize=False)
        browser.rendered = {"path": clip.value, "figure": fig, "audio": audio}
        show_in(out, audio, fig)

    def refresh_clips(*_):
        if split.value == "train" and label.value != "normal":
            label.value = "normal"  # re-enters refresh_clips once, with a valid combination
            return
        label.disabled = split.value == "train"
        rows = labelled[(labelled["machine"] == machine.value) & (labelled["split"] == split.value)
                        & (labelled["domain"] == domain.value) & (labelled["label"] == label.value)]
        options = [(name, path) for name, path in zip(rows["file_name"], rows["path"])]
        clip.unobserve(show, names="value")
        try:
            clip.options = options
            clip.value = options[0][1] if options else None
        finally:
            clip.observe(show, names="value")
        show()

    for control in (machine, split, domain, label):
        control.observe(refresh_clips, names="value")
    clip.observe(show, names="value")
    # CSS classes name the parts for the browser test (tests/browser) and for a reader's own styling
    browser.add_class("asd-clip-browser")
    out.add_class("asd-pane-clip")
    for name, control in (("machine", machine), ("split", split), ("domain", domain), ("label", label), ("clip", clip)):
        control.add_class(f"asd-control-{name}")
    browser.machine, browser.split, browser.domain, browser.label = machine, split, domain, label
    browser.clip, browser.out = clip, out
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
    side by side (clips from :func:`pick_normal_anomalous`), with time (s) and mel-bin axes and one
    colour bar (dB) per row: both clips of a row share its colour scale. Each panel's title names
    the label; the clip's file name is printed small under it."""

    picks = pick_normal_anomalous(index, machines, per_machine=1, seed=seed)
    machines = list(dict.fromkeys(picks["machine"]))
    fig = plt.figure(figsize=(10, 2.7 * len(machines)), layout="constrained")
    grid = fig.add_gridspec(len(machines), 3, width_ratios=[20, 20, 1])
    hop_seconds = 512 / 16000
    for row, machine in enumerate(machines):
        rows = picks[picks["machine"] == machine]
        mels = [log_mel(load_audio(path)).numpy() for path in rows["path"]]
        vmin = min(m.min() for m in mels)
        vmax = max(m.max() for m in mels)
        for col, (mel, pick) in enumerate(zip(mels, rows.itertuples())):
            ax = fig.add_subplot(grid[row, col])
            image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                              extent=(0, mel.shape[1] * hop_seconds, 0, mel.shape[0]))
            ax.set_title(f"{machine}: {pick.label} (source domain)\n{pick.file_name}", fontsize=9)
            ax.set_xlabel("time (s)", fontsize=9)
            if col == 0:
                ax.set_ylabel("mel bin", fontsize=9)
            ax.tick_params(labelsize=8)
        fig.colorbar(image, cax=fig.add_subplot(grid[row, 2]), label="dB")
    return fig


def readme_markdown(root) -> str | None:
    """The data root's ``README.md`` (the synthetic dataset describes itself there), whole, with
    every heading pushed two levels down (``#`` -> ``###``) so that it nests under the notebook's
    own section; None when the root has no README."""

    path = Path(root) / "README.md"
    if not path.is_file():
        return None
    return re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", path.read_text(encoding="utf-8"),
                  flags=re.MULTILINE)


def target_outside_source(xy: np.ndarray, domains, *, coverage: float = 0.95) -> tuple[int, int]:
    """How many target clips lie outside the region that holds ``coverage`` of the source clips.

    xy: (clips, 2) projected training clips; domains: (clips,) 'source'/'target'. The region is
    the source clips' Mahalanobis ellipse (mean and covariance of the source points) whose radius
    is the ``coverage`` quantile of the source clips' own distances. Returns ``(outside, targets)``.
    """
    xy = np.asarray(xy, dtype=np.float64)
    domains = np.asarray(domains)
    source, target = xy[domains == "source"], xy[domains == "target"]
    if len(source) < 3 or len(target) == 0:
        return 0, len(target)
    centre = source.mean(axis=0)
    precision = np.linalg.pinv(np.cov(source, rowvar=False))

    def distance(points):
        d = points - centre
        return np.einsum("ij,jk,ik->i", d, precision, d)

    radius = np.quantile(distance(source), coverage)
    return int((distance(target) > radius).sum()), len(target)


def domain_shift_figure(index: pd.DataFrame, *, n_samples: int, seed: int = 0, n_cols: int = 4):
    """Figure: per machine type, the training clips' log-mel statistics (:func:`logmel_statistics`
    of the first ``n_samples`` samples) projected to 2-D with PCA, source and target marked apart.

    Returns ``(figure, counts)``: counts has one row per machine type with ``targets`` and
    ``outside`` (target clips outside the ellipse holding 95 % of the source clips,
    :func:`target_outside_source`) and ``share_outside``, so the prose can quote what the
    figure shows.
    """


    train = index[index["split"] == "train"]
    machines = sorted(train["machine"].unique())
    n_rows = int(np.ceil(len(machines) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 2.9 * n_rows), squeeze=False)
    counts = []
    for ax, machine in zip(axes.ravel(), machines):
        rows = train[train["machine"] == machine]
        stats = logmel_statistics(load_batch(list(rows["path"]), n_samples=n_samples, mode="crop"))
        xy = PCA(n_components=2, random_state=seed).fit_transform(stats)
        domains = rows["domain"].to_numpy()
        for domain, marker, size in (("source", "o", 12), ("target", "^", 40)):
            mask = domains == domain
            ax.scatter(xy[mask, 0], xy[mask, 1], s=size, marker=marker, label=domain, alpha=0.7)
        outside, targets = target_outside_source(xy, domains)
        counts.append({"machine": machine, "targets": targets, "outside": outside,
                       "share_outside": outside / targets if targets else np.nan})
        ax.set_title(f"{machine}: {outside}/{targets} targets outside", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes.ravel()[0].legend(fontsize=8)
    for ax in axes.ravel()[len(machines):]:
        ax.axis("off")
    fig.suptitle("training clips: PCA of log-mel statistics (source vs target)", fontsize=10)
    fig.tight_layout()
    return fig, pd.DataFrame(counts, columns=["machine", "targets", "outside", "share_outside"])
