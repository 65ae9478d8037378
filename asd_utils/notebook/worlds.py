"""The two synthetic worlds side by side, for the dataset tour (notebook 00).

``envelope`` and ``realistic`` (:data:`asd_utils.synth.VARIANTS`) differ in what "an anomaly"
is: a type-specific coloration of the whole clip, or a general fault that comes and goes in a
reverberant, noisy, level-normalised recording. These helpers generate one machine type in each
variant (small roots, cached like every synthetic root), draw a normal and an anomalous clip of
each as log-mel spectrograms, and put the realism statistics of both in one table.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from asd_utils import paths
from asd_utils.data.audio import load_audio
from asd_utils.features.logmel import log_mel
from asd_utils.notebook.plots import spectrogram
from asd_utils.synth.generate import VARIANTS, ensure_dataset
from asd_utils.synth.realism import realism_table


def variant_roots(machine: str = "bearing", profile: str = "smoke", seed: int = 0, *,
                  folder: str | os.PathLike | None = None, progress: bool = False) -> dict[str, Path]:
    """One root per variant holding only ``machine`` (generated on first use, then reused).

    Roots are ``<folder>/synth_<profile>_<variant>_<machine>`` (``folder`` defaults to the
    compendium's data folder). Returns ``{variant: root}`` in :data:`VARIANTS` order.
    """

    base = Path(folder) if folder is not None else paths.data_dir()
    return {variant: ensure_dataset(profile, base / f"synth_{profile}_{variant}_{machine}", seed,
                                    machines=[machine], variant=variant, progress=progress)
            for variant in VARIANTS}


def example_clips(root: str | os.PathLike, machine: str, domain: str = "source") -> dict[str, pd.Series]:
    """A normal and an anomalous test clip of ``machine`` and ``domain`` from ``synth_metadata.csv``:
    the first normal clip by file name, and the anomalous clip of highest severity (the clearest
    example of its fault). Returns ``{"normal": row, "anomaly": row}`` with ``path`` added."""
    root = Path(root)
    meta = pd.read_csv(root / "synth_metadata.csv", keep_default_na=False)
    test = meta[(meta["split"] == "test") & (meta["machine"] == machine) & (meta["domain"] == domain)]
    if test.empty:
        raise ValueError(f"{root / 'synth_metadata.csv'}: no {domain} test clip of machine {machine!r}")
    normal = test[test["label"] == "normal"].sort_values("file_name").iloc[0].copy()
    anomaly = test[test["label"] == "anomaly"].sort_values(["severity", "file_name"],
                                                           ascending=[False, True]).iloc[0].copy()
    for row in (normal, anomaly):
        row["path"] = str(root / "dev_data" / "raw" / machine / "test" / row["file_name"])
    return {"normal": normal, "anomaly": anomaly}


def variant_spectrograms(roots: dict[str, Path], machine: str = "bearing", domain: str = "source"):
    """Figure: one row per variant, a normal (left) and an anomalous (right) clip's log-mel
    spectrogram (128 bands, n_fft 1024, hop 512, dB), titled with the clip's hidden truths."""


    fig, axes = plt.subplots(len(roots), 2, figsize=(12, 3.0 * len(roots)), squeeze=False)
    for row, (variant, root) in enumerate(roots.items()):
        clips = example_clips(root, machine, domain)
        for col, (label, clip) in enumerate(clips.items()):
            mel = log_mel(load_audio(clip["path"])[None], n_mels=128)[0].numpy()
            what = (f"{clip['anomaly_kind']}, severity {float(clip['severity']):.2f}" if label == "anomaly"
                    else "normal")
            spectrogram(axes[row, col], mel, title=f"{variant}: {machine} {domain}, {what}, "
                                                   f"SNR {float(clip['snr_db']):.1f} dB")
    fig.tight_layout()
    return fig


def variant_realism_tables(roots: dict[str, Path]) -> pd.DataFrame:
    """The realism statistics (``asd_utils.synth.realism.realism_table``) of every root, side by
    side: rows = statistics, columns = (variant, machine type)."""

    tables = {variant: realism_table(root)[0] for variant, root in roots.items()}
    return pd.concat(tables, axis=1)
