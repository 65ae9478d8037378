"""How much a DCASE-layout root sounds like real recordings: statistics per machine type.

    python -m asd_utils.synth.realism ROOT [--out DIR] [--name NAME] [--split test]

For the clips of one split (the test clips by default) of every machine type (and section, where a
type has several), the report gives the statistics that tell where a dataset's anomalies live and
how large the clip-to-clip variation of normal sound is next to them. The front end is the
official baseline's: 128-band log-mel, n_fft 1024, hop 512, ``10 log10`` of the mel power
(``asd_utils.features.logmel.log_mel``), i.e. a frame rate of 16000 / 512 = 31.25 frames per second.

Rows (see :data:`STATISTICS` for the exact definitions):

- probe AUC on the log-mel mean over time (the clip's stationary spectral envelope), on the log-mel
  standard deviation over time (how each band fluctuates), on both, and on a modulation feature:
  a supervised logistic regression (C = 0.1 on standardised features), stratified 5-fold
  cross-validation repeated over 5 shuffles, mean held-out AUC. It reads the labels, so it is a
  description of the data, never a choice: nothing in the compendium is scored or tuned by it.
- clip RMS level in dBFS and its spread across clips; per-band level spread among normal clips;
  the anomaly shift and the domain shift of the mean band level; clip durations; the frame-to-frame
  change of the log-mel.

The modulation feature is the modulation spectrum of the band envelopes: each log-mel band's
trajectory over time (mean removed, Hann window) is Fourier transformed; its power is averaged
over the 16 mel bands of each of 8 groups and over the modulation-frequency bands 0.5-1, 1-2,
2-4, 4-8 and 8-16 Hz (the frame rate's Nyquist is 15.6 Hz), and written in dB: 40 numbers per clip.

Rows that need labels (the probes and the anomaly shift) are left empty, with the reason in the
report's notes, when the clips carry no normal/anomaly labels (blinded evaluation data) or too
few of each for 5 stratified folds; the domain shift likewise needs source and target normals.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from asd_utils.data import DataError, discover, load_audio
from asd_utils.evaluation.results import to_markdown
from asd_utils.features.logmel import log_mel
from asd_utils.storage.atomic import atomic_write_csv, atomic_write_json, atomic_write_text

SAMPLE_RATE = 16000
N_FFT = 1024
HOP_LENGTH = 512
N_MELS = 128
FRAME_RATE_HZ = SAMPLE_RATE / HOP_LENGTH  # 31.25 log-mel frames per second
#: Modulation-frequency band edges in Hz (the last edge lies above the frame rate's Nyquist, 15.625 Hz).
MODULATION_EDGES_HZ = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: Mel bands are averaged in this many equal groups for the modulation feature.
MODULATION_MEL_GROUPS = 8
PROBE_C = 0.1
PROBE_FOLDS = 5
PROBE_REPEATS = 5
_POWER_FLOOR = 1e-12  # floor of a modulation power before the logarithm (dB^2)
_RMS_FLOOR = 1e-10  # -200 dBFS: the level of a silent clip

#: statistic key -> what the report calls it (the row label) and how it is computed.
STATISTICS: dict[str, str] = {
    "clips": "clips in the split (count)",
    "duration_min_s": "shortest clip (s)",
    "duration_max_s": "longest clip (s)",
    "probe_auc_logmel_mean": "probe AUC, log-mel mean over time (128 features)",
    "probe_auc_logmel_std": "probe AUC, log-mel std over time (128 features)",
    "probe_auc_logmel_both": "probe AUC, log-mel mean and std over time (256 features)",
    "probe_auc_modulation": "probe AUC, modulation spectrum of the band envelopes (40 features)",
    "rms_dbfs": "clip RMS level, mean over clips (dBFS; 0 dBFS = RMS 1.0)",
    "rms_spread_db": "clip RMS level, spread across clips (dB, standard deviation)",
    "band_spread_db": "per-band level spread among normal clips (dB, std across clips, mean over bands)",
    "anomaly_shift_db": "anomaly shift of the mean band level (dB, mean over bands of |anomalies - normals|)",
    "anomaly_shift_over_spread": "anomaly shift / per-band level spread",
    "domain_shift_db": "domain shift of the mean band level (dB, mean over bands of |source - target normals|)",
    "frame_change_db": "frame-to-frame change (dB, mean |difference of consecutive log-mel frames|)",
}


# ---------------------------------------------------------------------------------------------
# Per-clip features


def rms_dbfs(waves: np.ndarray) -> np.ndarray:
    """Clip RMS level in dBFS: ``20 log10(sqrt(mean(x^2)))`` with full scale = amplitude 1.0
    (a full-scale sine reads -3.01 dBFS). waves: (clips, samples) -> (clips,) dB."""
    waves = np.asarray(waves, dtype=np.float64)
    return 20.0 * np.log10(np.maximum(np.sqrt(np.mean(waves**2, axis=-1)), _RMS_FLOOR))


def frame_change_db(logmel: np.ndarray) -> np.ndarray:
    """Mean absolute change between consecutive frames: logmel (clips, bands, frames) in dB ->
    (clips,) dB, averaged over bands and frame pairs (NaN for a clip of one frame)."""
    if logmel.shape[-1] < 2:
        return np.full(logmel.shape[0], np.nan)
    return np.abs(np.diff(logmel, axis=-1)).mean(axis=(1, 2))


def modulation_spectrum(logmel: np.ndarray, *, frame_rate: float = FRAME_RATE_HZ) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum of each band's trajectory over time.

    logmel: (clips, bands, frames) in dB. Each trajectory has its mean removed and is weighted
    by a Hann window before the real FFT; power is normalised by the window's energy.
    Returns ``(frequencies (frames // 2 + 1,) in Hz, power (clips, bands, frames // 2 + 1) in dB^2/Hz)``.
    """
    frames = logmel.shape[-1]
    window = np.hanning(frames) if frames > 1 else np.ones(1)
    centred = logmel - logmel.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(centred * window, axis=-1)
    power = np.abs(spectrum) ** 2 / (frame_rate * np.sum(window**2))
    return np.fft.rfftfreq(frames, d=1.0 / frame_rate), power


def modulation_features(logmel: np.ndarray, *, frame_rate: float = FRAME_RATE_HZ,
                        edges_hz: Sequence[float] = MODULATION_EDGES_HZ,
                        mel_groups: int = MODULATION_MEL_GROUPS) -> np.ndarray:
    """The modulation feature: mean modulation power per (mel group, modulation band), in dB.

    logmel: (clips, bands, frames) in dB, bands divisible by ``mel_groups``. Returns
    (clips, mel_groups * (len(edges_hz) - 1)), laid out group by group (the modulation bands of
    mel group 0 first). A modulation band holding no frequency bin (a clip too short for it) is NaN.
    """
    clips, bands, _ = logmel.shape
    if bands % mel_groups:
        raise ValueError(f"{bands} mel bands: expected a multiple of the {mel_groups} mel groups")
    freqs, power = modulation_spectrum(logmel, frame_rate=frame_rate)
    grouped = power.reshape(clips, mel_groups, bands // mel_groups, -1).mean(axis=2)
    out = np.full((clips, mel_groups, len(edges_hz) - 1), np.nan)
    for j, (low, high) in enumerate(zip(edges_hz[:-1], edges_hz[1:])):
        inside = (freqs >= low) & (freqs < high)
        if inside.any():
            out[:, :, j] = 10.0 * np.log10(np.maximum(grouped[:, :, inside].mean(axis=-1), _POWER_FLOOR))
    return out.reshape(clips, -1)


def clip_features(waves: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-clip feature the report needs, for clips of one length.

    waves: (clips, samples) float at 16 kHz. Returns a dict of arrays with one row per clip:
    ``logmel_mean`` and ``logmel_std`` (clips, 128) dB (std with ddof = 1 over frames),
    ``modulation`` (clips, 40) dB, ``frame_change`` (clips,) dB, ``rms_dbfs`` (clips,) dBFS and
    ``duration_s`` (clips,) seconds.
    """
    waves = np.atleast_2d(np.asarray(waves, dtype=np.float32))
    with torch.inference_mode():
        mel = log_mel(waves, sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS)
    mel_np = mel.numpy().astype(np.float64)
    return {
        "logmel_mean": mel_np.mean(axis=2),
        "logmel_std": mel_np.std(axis=2, ddof=1) if mel_np.shape[2] > 1 else np.zeros(mel_np.shape[:2]),
        "modulation": modulation_features(mel_np),
        "frame_change": frame_change_db(mel_np),
        "rms_dbfs": rms_dbfs(waves),
        "duration_s": np.full(len(waves), waves.shape[1] / SAMPLE_RATE),
    }


def features_of_files(paths: Sequence[str], *, convert: bool = False, batch_size: int = 32) -> dict[str, np.ndarray]:
    """:func:`clip_features` of WAV files (any lengths) in the order given: clips of equal length
    are computed together in batches of ``batch_size``. Raises ``DataError`` naming a bad file."""
    waves = [load_audio(path, sample_rate=SAMPLE_RATE, convert=convert) for path in paths]
    by_length: dict[int, list[int]] = {}
    for i, wave in enumerate(waves):
        by_length.setdefault(len(wave), []).append(i)
    parts: dict[str, list[np.ndarray]] = {}
    order: list[int] = []
    for rows in by_length.values():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            for key, value in clip_features(np.stack([waves[i] for i in chunk])).items():
                parts.setdefault(key, []).append(value)
            order.extend(chunk)
    inverse = np.argsort(order)
    return {key: np.concatenate(values)[inverse] for key, values in parts.items()}


# ---------------------------------------------------------------------------------------------
# Statistics of a group of clips


def probe_auc(features: np.ndarray, is_anomaly: np.ndarray, *, repeats: int = PROBE_REPEATS,
              folds: int = PROBE_FOLDS) -> float:
    """Cross-validated AUC of a linear probe: logistic regression (C = 0.1) on standardised
    features, stratified ``folds``-fold cross-validation repeated over ``repeats`` shuffles
    (seeds 0..repeats-1), mean of the held-out AUCs over all repeats.

    features: (clips, dims); is_anomaly: (clips,) 0/1, at least ``folds`` of each class.
    """

    labels = np.asarray(is_anomaly).astype(int)
    aucs = []
    # one BLAS thread: these fits are small, and threads only contend (several times slower on 2 cores)
    with threadpool_limits(limits=1):
        for seed in range(repeats):
            probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=5000))
            splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
            decision = cross_val_predict(probe, features, labels, cv=splitter, method="decision_function")
            aucs.append(roc_auc_score(labels, decision))
    return float(np.mean(aucs))


def band_level_statistics(band_levels: np.ndarray, is_anomaly: np.ndarray,
                          domain: np.ndarray) -> tuple[dict[str, float], list[str]]:
    """Level spread and shifts of the mean band level, from the clips' log-mel means.

    band_levels: (clips, bands) dB (log-mel mean over time); is_anomaly: (clips,) 0/1 or NaN
    (unknown); domain: (clips,) ``source``/``target``/None. Returns ``(values, notes)``:

    - ``band_spread_db``: per band, the standard deviation (ddof = 1) across the normal clips of
      both domains; mean over bands;
    - ``anomaly_shift_db``: mean over bands of |mean over anomalies - mean over normals|;
    - ``anomaly_shift_over_spread``: the two above divided;
    - ``domain_shift_db``: mean over bands of |mean over source normals - mean over target normals|.

    A value that its clips cannot give is NaN, with the reason in ``notes``. Without any label,
    ``band_spread_db`` is taken over all clips (a note says so).
    """
    labels = np.asarray(is_anomaly, dtype=float)
    domain = np.asarray(domain, dtype=object)
    normal, anomalous = labels == 0, labels == 1
    notes: list[str] = []
    values = dict.fromkeys(("band_spread_db", "anomaly_shift_db", "anomaly_shift_over_spread", "domain_shift_db"),
                           float("nan"))
    reference = normal
    if not normal.any():
        notes.append("no clip labelled normal: the per-band level spread is taken over all clips")
        reference = np.ones(len(labels), bool)
    if reference.sum() >= 2:
        values["band_spread_db"] = float(band_levels[reference].std(axis=0, ddof=1).mean())
    else:
        notes.append("fewer than 2 clips: no per-band level spread")
    if normal.any() and anomalous.any():
        shift = np.abs(band_levels[anomalous].mean(axis=0) - band_levels[normal].mean(axis=0)).mean()
        values["anomaly_shift_db"] = float(shift)
        values["anomaly_shift_over_spread"] = float(shift / values["band_spread_db"])
    else:
        notes.append(f"{int(normal.sum())} normal and {int(anomalous.sum())} anomalous labelled clips: "
                     "no anomaly shift (it needs both)")
    source, target = normal & (domain == "source"), normal & (domain == "target")
    if source.any() and target.any():
        values["domain_shift_db"] = float(
            np.abs(band_levels[source].mean(axis=0) - band_levels[target].mean(axis=0)).mean())
    else:
        notes.append(f"{int(source.sum())} source and {int(target.sum())} target normal clips: "
                     "no domain shift (it needs both)")
    return values, notes


def group_statistics(features: dict[str, np.ndarray], is_anomaly: np.ndarray,
                     domain: np.ndarray) -> tuple[dict[str, float], list[str]]:
    """Every statistic of :data:`STATISTICS` for one group of clips (one machine type/section).

    features: :func:`clip_features` rows of the group; is_anomaly (clips,) 0/1 or NaN;
    domain (clips,). Returns ``(values keyed as STATISTICS, notes on what was left out and why)``.
    """
    labels = np.asarray(is_anomaly, dtype=float)
    values: dict[str, float] = {
        "clips": float(len(labels)),
        "duration_min_s": float(features["duration_s"].min()),
        "duration_max_s": float(features["duration_s"].max()),
        "rms_dbfs": float(features["rms_dbfs"].mean()),
        "rms_spread_db": float(features["rms_dbfs"].std(ddof=1)) if len(labels) > 1 else float("nan"),
        "frame_change_db": float(np.nanmean(features["frame_change"])),
    }
    levels, notes = band_level_statistics(features["logmel_mean"], labels, domain)
    values.update(levels)

    probe_sets = {
        "probe_auc_logmel_mean": features["logmel_mean"],
        "probe_auc_logmel_std": features["logmel_std"],
        "probe_auc_logmel_both": np.concatenate([features["logmel_mean"], features["logmel_std"]], axis=1),
        "probe_auc_modulation": features["modulation"],
    }
    known = ~np.isnan(labels)
    n_normal, n_anomalous = int((labels == 0).sum()), int((labels == 1).sum())
    if min(n_normal, n_anomalous) < PROBE_FOLDS:
        notes.append(f"probe rows left empty: {n_normal} normal and {n_anomalous} anomalous labelled clips "
                     f"(the probe needs at least {PROBE_FOLDS} of each for {PROBE_FOLDS} stratified folds)")
        values.update(dict.fromkeys(probe_sets, float("nan")))
    else:
        if not known.all():
            notes.append(f"{int((~known).sum())} clips without a label are left out of the probes")
        for key, array in probe_sets.items():
            usable = known & np.all(np.isfinite(array), axis=1)
            if min((labels[usable] == 0).sum(), (labels[usable] == 1).sum()) < PROBE_FOLDS:
                values[key] = float("nan")
                notes.append(f"{key} left empty: too few clips long enough for every modulation band")
                continue
            values[key] = probe_auc(array[usable], labels[usable])
        if not np.all(np.isfinite(features["modulation"])):
            notes.append("some clips are too short for the lowest modulation band: left out of its probe")
    return {key: values[key] for key in STATISTICS}, notes


# ---------------------------------------------------------------------------------------------
# A whole root


def realism_table(root: str | Path, *, split: str = "test", convert: bool = False) -> tuple[pd.DataFrame, dict]:
    """The realism statistics of every machine type under a DCASE-layout ``root``.

    Returns ``(table, details)``: table has one row per statistic (index: the keys of
    :data:`STATISTICS`) and one column per group of clips, the machine type (``machine sNN``
    where a type has several sections); details holds ``notes`` (group -> reasons for empty
    cells) and ``counts`` (group -> clips per domain and label).

    Raises:
        DataError: no clip of ``split`` under ``root``, or an unreadable clip (named).
    """
    root = Path(root)
    index = discover(root, splits=(split,))
    if index.empty:
        raise DataError(f"{root}: no {split} clips; expected ROOT/<machine>/{split}/*.wav in a DCASE layout")
    columns: dict[str, dict[str, float]] = {}
    details: dict = {"notes": {}, "counts": {}}
    for machine, clips in index.groupby("machine", sort=True):
        sections = sorted(clips["section"].unique())
        for section in sections:
            group = clips[clips["section"] == section]
            name = machine if len(sections) == 1 else f"{machine} s{section}"
            features = features_of_files(group["path"].tolist(), convert=convert)
            values, notes = group_statistics(features, group["is_anomaly"].to_numpy(float),
                                             group["domain"].to_numpy(object))
            columns[name] = values
            details["notes"][name] = notes
            kinds = group["domain"].fillna("unknown") + "_" + group["label"].fillna("unknown")
            details["counts"][name] = {kind: int(n) for kind, n in kinds.value_counts().sort_index().items()}
    table = pd.DataFrame(columns).reindex(list(STATISTICS))
    return table, details


def markdown_report(table: pd.DataFrame, details: dict, *, title: str) -> str:
    """The report as Markdown: title, the table (rows = statistics, one column per group, plus the
    mean over groups where there are several) and the notes on empty cells."""

    shown = table.copy()
    if shown.shape[1] > 1:
        shown["mean over types"] = shown.mean(axis=1, skipna=True)
    shown.index = [STATISTICS[key] for key in shown.index]
    shown.index.name = "statistic"
    lines = [f"# {title}", "",
             "Front end: 128-band log-mel, n_fft 1024, hop 512, 10 log10 power. Probe: logistic regression "
             f"(C = {PROBE_C}) on standardised features, stratified {PROBE_FOLDS}-fold x {PROBE_REPEATS} "
             "shuffles, mean held-out AUC (reads labels: a description, never a choice). Modulation feature: "
             "modulation spectrum of the log-mel band trajectories, 8 mel groups x bands "
             f"{'-'.join(f'{e:g}' for e in MODULATION_EDGES_HZ)} Hz.", "",
             to_markdown(shown, floatfmt=".2f", index=True), ""]
    noted = {name: notes for name, notes in details["notes"].items() if notes}
    if noted:
        lines += ["Notes:", ""] + [f"- {name}: {note}" for name, notes in noted.items() for note in notes] + [""]
    return "\n".join(lines)


def write_report(table: pd.DataFrame, details: dict, out: str | Path, name: str, *, title: str,
                 meta: dict | None = None) -> list[Path]:
    """Write ``realism_<name>.md``, ``.csv`` (tidy: group, statistic, value) and ``.json`` (table,
    notes, counts, definitions and ``meta``) under ``out``, each atomically. Returns the paths."""
    out = Path(out)
    stem = out / f"realism_{name}"
    tidy = table.rename_axis("statistic").reset_index().melt(id_vars="statistic", var_name="group", value_name="value")
    payload = {"meta": meta or {}, "definitions": STATISTICS,
               "statistics": {group: {k: (None if pd.isna(v) else round(float(v), 4)) for k, v in column.items()}
                              for group, column in table.items()},
               "notes": details["notes"], "counts": details["counts"]}
    paths = [stem.with_suffix(".md"), stem.with_suffix(".csv"), stem.with_suffix(".json")]
    atomic_write_text(paths[0], markdown_report(table, details, title=title))
    atomic_write_csv(paths[1], tidy[["group", "statistic", "value"]], float_format="%.4f")
    atomic_write_json(paths[2], payload)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asd_utils.synth.realism",
                                     description="Realism statistics per machine type of a DCASE-layout root.")
    parser.add_argument("root", type=Path,
                        help="DCASE-layout root (dev_data/raw/<machine>/test/*.wav or <machine>/test)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for realism_<name>.md/.csv/.json")
    parser.add_argument("--name", default=None, help="name of the report files (default: the root's folder name)")
    parser.add_argument("--split", default="test", choices=("test", "train", "supplemental"))
    parser.add_argument("--convert", action="store_true",
                        help="downmix and resample clips that are not 16 kHz mono instead of stopping")
    args = parser.parse_args(argv)
    name = args.name or args.root.resolve().name
    try:
        table, details = realism_table(args.root, split=args.split, convert=args.convert)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    title = f"Realism statistics: {name} ({args.split} clips)"
    print(markdown_report(table, details, title=title))
    meta = {"root": name, "split": args.split, "command": "python -m asd_utils.synth.realism " + " ".join(
        [str(args.root.name), f"--split {args.split}"])}
    for path in write_report(table, details, args.out, name, title=title, meta=meta):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
