"""NIVIC (DCASE 2025 Task 2, report 002): pseudo attribute labels, high-pass log-mel SE-ResNet18 +
|FFT| branch with AdaCos and Wilkinghoff's self-supervision, supplemental simulated clips, kNN.

F. Chu and M. Qian, "Anomaly sound detection method based on training attribute classification
models", DCASE 2025 Challenge technical report (National Intelligent Voice Innovation Center). The
system as this module writes it down (every reading of an open point: ``papers/002_nivic.md``):

1. **Pseudo attribute labels** for machine types whose attributes are hidden
   (:func:`pseudo_label_all`, ``asd_utils.methods.pseudo_labels``): clustering of log-mel statistics or
   quantised characteristic (envelope-spectrum) frequencies, per domain; the method per machine
   type is chosen by bootstrap stability on the training clips.
2. **High-pass rule** (:func:`highpass_decision`): a machine type gets the high-pass filter when
   most of the power of its training clips within the log-mel range lies above the cut-off
   ("characteristics mainly concentrated in high frequencies"), decided from training clips only;
   :func:`apply_highpass` filters its clips (training, supplemental and test alike).
3. **Classes** (:func:`class_table`): machine type x section x (true or pseudo) attributes x domain,
   plus one class per machine type/section of **simulated clips** (:func:`simulate_supplemental`:
   supplemental clean-machine clips mixed with its noise-only clips at a random SNR).
4. **Model** (:func:`train_model`): :class:`asd_utils.models.SEResNetFFTModel` trained with
   :class:`asd_utils.training.statex.SelfSupervisedHeads` (sub-cluster AdaCos over C / 3C / 9C
   classes, StatEx, FeatEx) and mixup, on random crops of whole clips
   (``asd_utils.training.crops``); embeddings average the crops that cover a clip (:func:`embed`).
5. **Back end** (:func:`score`): per machine type and section, ``asd_utils.scoring.KNNScorer`` on
   the L2-normalised embeddings of the normal training clips, one bank per domain, score = the
   smaller of the two mean cosine distances to the k nearest neighbours.

:func:`run_system` runs one system end to end (classes, high-pass, training, embeddings, kNN), as
notebook 04 does for each of its systems.

Longer than 500 lines: the method reads in one place, from the pseudo-labels to one system's run.

First-shot rule: the pseudo labels, the high-pass choice, the held-out accuracy and the kNN banks use
training (and supplemental) clips only; test labels enter nothing but ``asd_utils.evaluation.metrics.evaluate``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.signal import welch
from tqdm.auto import tqdm

from asd_utils.data import DataError, is_two_channel_layout, load_audio, load_batch
from asd_utils.data.audio import far_channel_noise
from asd_utils.data.channels import check_channel
from asd_utils.evaluation.metrics import official_score
from asd_utils.methods import pseudo_labels as pl
from asd_utils.methods.finetune import holdout_split
from asd_utils.methods.pipeline import classification_accuracy, score_sections, training_run_dir
from asd_utils.methods.pseudo_labels import HIDDEN_ATTRIBUTE
from asd_utils.models.seresnet import SEResNetFFTModel
from asd_utils.scoring import KNNScorer
from asd_utils.signal import highpass
from asd_utils.storage.atomic import atomic_write_csv
from asd_utils.storage.cache import cached_arrays
from asd_utils.storage.keys import array_digest, cache_key
from asd_utils.training import Trainer, build_class_labels, mix_at_snr, seed_everything
from asd_utils.training.clips import clips_fingerprint, concat, embed_clips, fit_window, make_clip_loader, take
from asd_utils.training.crops import embed_crops, make_crop_loader
from asd_utils.training.statex import SelfSupervisedHeads

__all__ = [
    "CLASS_COLUMN",
    "SYSTEMS",
    "NivicModel",
    "SystemData",
    "SystemRun",
    "apply_highpass",
    "class_table",
    "embed",
    "embedding_ingredients",
    "highpass_decision",
    "pseudo_label_all",
    "run_system",
    "score",
    "simulate_supplemental",
    "system_options",
    "train_model",
    "training_stack",
    "two_channel_supplemental",
]

CLASS_COLUMN = "class_attributes"
SIMULATED_ATTRIBUTE = "simulated"
CACHE_VERSION = 2  # bump when the pseudo-labelling or embedding code changes what a cache holds
# system name -> which parts are on (pseudo-labels, StatEx/FeatEx, high-pass, supplemental mixing)
SYSTEMS = {
    "Full": {"pseudo_labels": True, "ssl": True, "highpass": True, "supplemental": True},
    "No pseudo-labels": {"pseudo_labels": False, "ssl": True, "highpass": True, "supplemental": True},
    "No StatEx/FeatEx": {"pseudo_labels": True, "ssl": False, "highpass": True, "supplemental": True},
    "No high-pass": {"pseudo_labels": True, "ssl": True, "highpass": False, "supplemental": True},
    "No supplemental mixing": {"pseudo_labels": True, "ssl": True, "highpass": True, "supplemental": False},
}


def system_options(name: str) -> dict[str, bool]:
    """The parts switched on in system ``name`` (one of :data:`SYSTEMS`)."""
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; expected one of {list(SYSTEMS)}")
    return dict(SYSTEMS[name])


def _hash_array(x: np.ndarray) -> str:
    if isinstance(x, list):  # clips at their own lengths

        return clips_fingerprint(x)
    return array_digest(x)


def training_stack(waves, rows: np.ndarray) -> np.ndarray:
    """``(n, T)`` float32 of the *training* clips ``waves[rows]`` (an array, or a list of clips at
    their own lengths). Clips of one machine type share a length in DCASE; where they do not, the
    shorter ones are tiled to the longest of them (training clips only, for per-type statistics)."""
    if not isinstance(waves, list):
        return np.asarray(waves)[rows]

    chosen = [waves[i] for i in np.flatnonzero(rows)] if np.asarray(rows).dtype == bool else [waves[i] for i in rows]
    longest = max(len(c) for c in chosen)
    return np.stack([fit_window(c, longest) for c in chosen]).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# pseudo labels
# --------------------------------------------------------------------------------------------------
def pseudo_label_all(train_index: pd.DataFrame, waves: np.ndarray, cfg: Mapping, *, sample_rate: int = 16000,
                     seed: int = 0, cache_dir: str | Path | None = None,
                     progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pseudo labels of every hidden-attribute machine type's training clips.

    train_index: training rows (``machine, file_name, domain, attributes``), waves ``(N, T)``
    aligned with it. Returns ``(labels, summary)``: labels one row per hidden-attribute clip
    (``machine, file_name, domain, charfreq_hz, clustering, charfreq, chosen, pseudo``; ``pseudo``
    = the chosen method's label, or ``noAttribute`` when no method is chosen), summary one row per
    machine x method x domain (``n_labels``, ``stability``, ``chosen``). Results are cached per
    machine type in ``cache_dir`` (keyed by the waveforms, file names and config).
    """


    label_parts, summary_parts = [], []
    for machine in tqdm(pl.hidden_attribute_machines(train_index), desc="pseudo labels", disable=not progress,
                        leave=False):
        rows = (train_index["machine"] == machine).to_numpy()
        m_index = train_index[rows].reset_index(drop=True)
        m_waves = training_stack(waves, rows)
        key = cache_key({"version": CACHE_VERSION, "machine": machine, "cfg": dict(cfg), "seed": int(seed),
                         "sr": int(sample_rate), "files": m_index["file_name"].tolist(),
                         "waves": _hash_array(m_waves)}, code=__name__)
        cached = None if cache_dir is None else Path(cache_dir) / f"{machine}_{key}"
        if cached is not None and (cached / "labels.csv").exists() and (cached / "summary.csv").exists():
            labels = pd.read_csv(cached / "labels.csv", dtype={"file_name": str})
            summary = pd.read_csv(cached / "summary.csv")
        else:
            labels, summary = pl.pseudo_label_machine(m_index, m_waves, cfg, sample_rate=sample_rate, seed=seed)
            chosen = pl.choose_method(summary, min_stability=float(cfg.get("min_stability", 0.0)))
            labels.insert(0, "machine", machine)
            labels["chosen"] = chosen or "none"
            labels["pseudo"] = labels[chosen] if chosen else pl.HIDDEN_ATTRIBUTE
            summary.insert(0, "machine", machine)
            summary["chosen"] = summary["method"] == chosen
            if cached is not None:
                atomic_write_csv(cached / "labels.csv", labels, index=False)
                atomic_write_csv(cached / "summary.csv", summary, index=False)
        label_parts.append(labels)
        summary_parts.append(summary)
    if not label_parts:
        empty = pd.DataFrame(columns=["machine", "file_name", "domain", "charfreq_hz", "clustering", "charfreq",
                                      "chosen", "pseudo"])
        return empty, pd.DataFrame(columns=["machine", "method", "domain", "n_clips", "n_labels", "stability",
                                            "chosen"])
    return pd.concat(label_parts, ignore_index=True), pd.concat(summary_parts, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# high-pass rule
# --------------------------------------------------------------------------------------------------
def highpass_decision(train_index: pd.DataFrame, waves: np.ndarray, cfg: Mapping, *,
                      sample_rate: int = 16000) -> pd.DataFrame:
    """Which machine types get the high-pass filter, from their training clips only.

    For each machine type: the mean Welch power spectrum of its training clips (1024-sample Hann
    segments), the share of the power in ``[fmin, fmax]`` (the log-mel range) that lies above
    ``cutoff_hz``; the filter is applied when that share is at least ``min_high_share``.
    cfg: ``cutoff_hz``, ``min_high_share``, ``fmin``, ``fmax``. Returns one row per machine type:
    ``machine, high_share, highpass`` (bool).
    """

    cutoff, fmin, fmax = float(cfg["cutoff_hz"]), float(cfg["fmin"]), float(cfg["fmax"])
    threshold = float(cfg["min_high_share"])
    rows = []
    for machine in sorted(train_index["machine"].unique()):
        sel = (train_index["machine"] == machine).to_numpy()
        freqs, power = welch(training_stack(waves, sel), fs=sample_rate, nperseg=1024, axis=-1)
        mean_power = power.mean(axis=0)
        band = (freqs >= fmin) & (freqs <= fmax)
        total = float(mean_power[band].sum())
        share = float(mean_power[band & (freqs >= cutoff)].sum() / total) if total > 0 else 0.0
        rows.append({"machine": machine, "high_share": share, "highpass": share >= threshold})
    return pd.DataFrame(rows)


def apply_highpass(waves: np.ndarray, machines: Sequence[str], chosen: Sequence[str], *, cutoff_hz: float,
                   sample_rate: int = 16000, order: int = 4) -> np.ndarray:
    """``waves (N, T)`` with the rows whose machine type is in ``chosen`` high-passed
    (``asd_utils.signal.highpass``); other rows are copied unchanged. Returns float32. A list of
    clips at their own lengths gives a list, each clip filtered alone."""

    if isinstance(waves, list):
        if len(machines) != len(waves):
            raise ValueError(f"{len(waves)} waveforms but {len(machines)} machine names")
        on = set(chosen)
        return [highpass(np.asarray(w, dtype=np.float32), sample_rate, cutoff_hz, order=order).astype(np.float32)
                if m in on else np.array(w, dtype=np.float32, copy=True) for w, m in zip(waves, machines)]

    out = np.array(waves, dtype=np.float32, copy=True)
    machines = np.asarray(machines)
    if len(machines) != len(out):
        raise ValueError(f"{len(out)} waveforms but {len(machines)} machine names")
    rows = np.isin(machines, list(chosen))
    if rows.any():
        out[rows] = highpass(out[rows], sample_rate, cutoff_hz, order=order).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------------
# supplemental simulated clips
# --------------------------------------------------------------------------------------------------
def simulate_supplemental(supplemental_index: pd.DataFrame, clean_waves: np.ndarray, noise_waves: np.ndarray,
                          cfg: Mapping, *, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Simulated training clips: clean-machine clips mixed with noise-only clips
    (``asd_utils.training.mix_at_snr``).

    In DCASE 2025 a machine type ships supplemental clips of one kind, clean machine sound *or*
    noise only, so the report's "mixing clean machine sound with background noise" can only pair
    the clean clips of one type with the noise-only clips of the others. ``cfg['noise_from']``:
    ``"other_types"`` (default) draws from the noise-only clips of every other machine type;
    ``"same_section"`` from those of the clean clip's own type and section (none on DCASE 2025).

    supplemental_index: the supplemental rows (``machine, section, domain, supplemental_kind``);
    clean_waves / noise_waves: ``(n_clean, T)`` / ``(n_noise, T)`` aligned with its clean / noise
    rows (in index order). cfg: ``mixes_per_clean`` (int), ``snr_db`` ([low, high]),
    ``noise_from``. Each clean clip is mixed ``mixes_per_clean`` times with a random noise clip
    at an SNR drawn uniformly (seeded). Returns ``(waves (M, T) float32, rows)``; rows carry
    ``machine, section, domain`` (the clean clip's), ``attributes = "simulated"`` and
    ``file_name`` (a descriptive name). A clean clip without any noise clip to pair gives none:
    the caller must say so (the system then equals one without supplemental mixing).
    """

    kinds = supplemental_index["supplemental_kind"].to_numpy()
    clean_rows = supplemental_index[kinds == "clean"].reset_index(drop=True)
    noise_rows = supplemental_index[kinds == "noise"].reset_index(drop=True)
    if len(clean_rows) != len(clean_waves) or len(noise_rows) != len(noise_waves):
        raise ValueError("clean/noise waveforms do not align with the supplemental index's clean/noise rows")
    rng = np.random.default_rng(seed)
    low, high = (float(v) for v in cfg["snr_db"])
    n_mix = int(cfg["mixes_per_clean"])
    noise_from = str(cfg.get("noise_from", "other_types"))
    if noise_from not in ("other_types", "same_section"):
        raise ValueError(f"supplemental.noise_from must be 'other_types' or 'same_section', got {noise_from!r}")
    waves, rows = [], []
    for (machine, section), group in clean_rows.groupby(["machine", "section"], sort=True):
        same_type = (noise_rows["machine"] == machine).to_numpy()
        pool = same_type & (noise_rows["section"] == section).to_numpy() if noise_from == "same_section" else ~same_type
        noise_sel = np.flatnonzero(pool)
        if len(noise_sel) == 0:
            continue
        for i in group.index:
            for j in range(n_mix):
                k = int(rng.choice(noise_sel))
                snr = float(rng.uniform(low, high))
                waves.append(mix_at_snr(np.asarray(clean_waves[i], dtype=np.float32),
                                        np.asarray(noise_waves[k], dtype=np.float32), snr))
                rows.append({"machine": machine, "section": section, "domain": clean_rows.at[i, "domain"] or "source",
                             "attributes": SIMULATED_ATTRIBUTE,
                             "file_name": f"sim_{clean_rows.at[i, 'file_name']}+{noise_rows.at[k, 'file_name']}"
                                          f"@{snr:.1f}dB#{j}"})
    if isinstance(clean_waves, list):  # clips at their own lengths: each mixture keeps its clean clip's length
        return waves, pd.DataFrame(rows, columns=["machine", "section", "domain", "attributes", "file_name"])
    if not waves:
        return np.zeros((0, clean_waves.shape[1] if np.ndim(clean_waves) == 2 else 0), np.float32), pd.DataFrame(
            columns=["machine", "section", "domain", "attributes", "file_name"])
    return np.stack(waves).astype(np.float32), pd.DataFrame(rows)


def two_channel_supplemental(train_index: pd.DataFrame, *, n_samples: int, whole_clips: bool = False,
                             sample_rate: int = 16000, clean_channel: str = "near"):
    """Supplemental clean and noise-only clips from the two channels of DCASE 2026 training clips.

    The compendium's reading, not the task's: DCASE 2026 (channel 0 near, 1 far; ``docs/dcase2026.md``)
    defines no supplemental clips, so report 002's "mixing clean machine sound with background noise"
    has none to draw on. Every normal training clip gives one **clean** clip, its near channel
    (``clean_channel``), and one **noise-only** clip, its far channel
    (:func:`asd_utils.data.audio.far_channel_noise`; mostly the factory). The far channel still
    carries a faint, delayed copy of the machine, so a mixture adds that copy too. In
    :func:`simulate_supplemental`, ``noise_from: same_section`` pairs a type's near channels with its
    own far channels (a clip may meet its own, probability 1 / clips of the type), the default
    ``other_types`` with those of the other types. Training clips only (first-shot rule).

    train_index: training rows (``path, file_name, machine, section, domain``, as
    :func:`asd_utils.data.discover` gives), all in a two-channel 2026 root. n_samples: length at
    ``sample_rate``; ``whole_clips=False``: every clip tiled or cut to it (``load_batch``), waves
    ``(N, n_samples)`` float32; ``True``: each clip at its own length, a shorter one tiled to
    ``n_samples`` (``clips.fit_window``, as notebook 04 loads clips), waves lists of ``N``
    ``(samples_i,)`` float32. clean_channel: a ``asd_utils.data.channels.CHANNELS`` setting; the
    noise side is always ``far``.

    Returns ``(supplemental_index, clean_waves, noise_waves)`` for :func:`simulate_supplemental`: the
    ``N`` training rows twice, as ``supplemental_kind`` ``"clean"`` then ``"noise"`` (``train_index``
    order), with ``split = "supplemental"`` and ``channel`` (``clean_channel`` / ``"far"``); the waves
    align with the clean / noise rows. ``ValueError`` on an empty index or unknown channel,
    ``asd_utils.data.DataError`` naming a clip outside a 2026 root.
    """
    check_channel(clean_channel)
    if len(train_index) == 0:
        raise ValueError("two_channel_supplemental needs training clips; train_index is empty")
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be a positive number of samples; got {n_samples}")
    paths = [str(p) for p in train_index["path"]]
    mono = [p for p in paths if not is_two_channel_layout(p)]
    if mono:
        raise DataError(f"{mono[0]}: not in a two-channel DCASE 2026 root, so it has no far channel to serve as "
                        f"noise ({len(mono)} such clip(s)); a root with supplemental clips uses those instead")
    if whole_clips:
        clean = [fit_window(load_audio(p, sample_rate=sample_rate, channel=clean_channel), int(n_samples))
                 for p in paths]
        noise = [fit_window(load_audio(p, sample_rate=sample_rate, channel="far"), int(n_samples)) for p in paths]
    else:
        clean = load_batch(paths, sample_rate=sample_rate, n_samples=int(n_samples), channel=clean_channel)
        noise = far_channel_noise(paths, n_samples=int(n_samples), sample_rate=sample_rate)
    rows = []
    for kind, channel in (("clean", clean_channel), ("noise", "far")):
        part = train_index.reset_index(drop=True).copy()
        part["split"] = "supplemental"
        part["supplemental_kind"] = kind
        part["channel"] = channel
        rows.append(part)
    return pd.concat(rows, ignore_index=True), clean, noise


# --------------------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------------------
def class_table(train_index: pd.DataFrame, pseudo: pd.DataFrame | None, *, use_pseudo: bool,
                simulated: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows to train on with their class attribute column :data:`CLASS_COLUMN`.

    Training clips keep their attribute string; hidden-attribute clips get ``"pseudo-" + label``
    from ``pseudo`` (columns ``machine, file_name, pseudo``) when ``use_pseudo`` (else
    ``noAttribute``: one class per machine/section/domain); simulated rows (``attributes =
    "simulated"``) are appended. Classes are then ``machine x section x class_attributes x domain``.
    """

    rows = train_index[["machine", "section", "domain", "attributes", "file_name"]].copy()
    rows[CLASS_COLUMN] = rows["attributes"].astype(str)
    if use_pseudo and pseudo is not None and len(pseudo):
        lookup = {(m, f): p for m, f, p in zip(pseudo["machine"], pseudo["file_name"], pseudo["pseudo"])}
        hidden = (rows["attributes"] == HIDDEN_ATTRIBUTE).to_numpy()
        mapped = [lookup.get((m, f)) for m, f in zip(rows["machine"], rows["file_name"])]
        for i in np.flatnonzero(hidden):
            if mapped[i] is not None and mapped[i] != HIDDEN_ATTRIBUTE:
                rows.iloc[i, rows.columns.get_loc(CLASS_COLUMN)] = f"pseudo-{mapped[i]}"
    rows["simulated"] = False
    if simulated is not None and len(simulated):
        sim = simulated[["machine", "section", "domain", "attributes", "file_name"]].copy()
        sim[CLASS_COLUMN] = sim["attributes"]
        sim["simulated"] = True
        rows = pd.concat([rows, sim], ignore_index=True)
    return rows.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# model training and embeddings
# --------------------------------------------------------------------------------------------------
@dataclass
class NivicModel:
    """A trained system: ``model`` (eval mode), ``heads`` (the C / 3C / 9C losses), ``classes``,
    trainer ``history``, held-out training-clip accuracy of the C head, and the config."""

    model: torch.nn.Module
    heads: torch.nn.Module
    classes: list[str]
    history: list[dict] = field(default_factory=list)
    heldout_accuracy: float = float("nan")
    config: dict = field(default_factory=dict)


def build_model(cfg: Mapping, n_classes: int, *, ssl: bool):
    """``(SEResNetFFTModel, SelfSupervisedHeads)`` for ``cfg`` (config section ``model``);
    ``ssl=False`` switches StatEx/FeatEx off and keeps the C head only (loss weights [1, 0, 0])."""

    sr = int(cfg.get("sample_rate", 16000))
    crop = int(round(float(cfg["crop_seconds"]) * sr))
    model = SEResNetFFTModel(crop, sample_rate=sr, n_fft=int(cfg["n_fft"]), hop_length=int(cfg["hop_length"]),
                             n_mels=int(cfg["n_mels"]), fmin=float(cfg["fmin"]), fmax=float(cfg["fmax"]),
                             emb_dim=int(cfg["emb_dim"]), width=float(cfg["width"]), se_ratio=int(cfg["se_ratio"]),
                             statex_prob=float(cfg["statex_prob"]) if ssl else 0.0,
                             featex_prob=float(cfg["featex_prob"]) if ssl else 0.0,
                             remove_temporal_mean=bool(cfg.get("remove_temporal_mean", True)),
                             final_bn_relu=bool(cfg.get("final_bn_relu", False)))
    weights = list(cfg["loss_weights"]) if ssl else [1.0, 0.0, 0.0]
    heads = SelfSupervisedHeads(n_classes, model.dim, n_subclusters=int(cfg["n_subclusters"]), loss_weights=weights,
                                trainable=list(cfg.get("trainable_centres", [False, True, True])),
                                b_avg=str(cfg.get("adacos_b_avg", "non_target")))
    return model, heads


def train_model(waves: np.ndarray, labels: np.ndarray, classes: Sequence[str], cfg: Mapping, *, ssl: bool = True,
                seed: int = 0, device: str | torch.device = "cpu", heldout_waves: np.ndarray | None = None,
                heldout_labels: np.ndarray | None = None, progress: bool = True,
                checkpoint_dir: str | Path | None = None) -> NivicModel:
    """Train the two-branch model on random crops of whole clips.

    waves: ``(N, T)`` float32 whole clips at ``cfg['sample_rate']``; labels ``(N,)`` int64 into
    ``classes``. cfg (config section ``model``): front end (``n_fft, hop_length, n_mels, fmin,
    fmax``), ``crop_seconds``, ``embed_hop_seconds``, ``width``, ``emb_dim``, ``se_ratio``,
    ``n_subclusters``, ``statex_prob``, ``featex_prob``, ``loss_weights``, ``optimizer``,
    ``scheduler`` (optional), ``batch_size``, ``epochs``, ``mixup_alpha``, ``mixup_prob``.
    ``heldout_*``: training clips kept out of the fit; the C head's accuracy on them is returned.
    ``checkpoint_dir`` (``pipeline.training_run_dir``): a finished run there is restored, not retrained.
    """

    sr = int(cfg.get("sample_rate", 16000))
    crop = int(round(float(cfg["crop_seconds"]) * sr))
    seed_everything(seed)
    model, heads = build_model(cfg, len(classes), ssl=ssl)
    trainer = Trainer(model, heads, dict(cfg.get("optimizer") or {"name": "adam", "lr": 1e-3}),
                      dict(cfg.get("scheduler") or {"name": "constant"}), int(cfg["epochs"]), device=device,
                      mixup_alpha=cfg.get("mixup_alpha"), mixup_prob=float(cfg.get("mixup_prob", 1.0)),
                      max_grad_norm=cfg.get("max_grad_norm"), seed=seed, progress=progress,
                      amp=bool(cfg.get("mixed_precision", False)),
                      checkpoint_dir=checkpoint_dir, config={"system": "nivic_seresnet_fft", "ssl": bool(ssl)})
    if isinstance(waves, list):  # clips at their own lengths: one random window of each drawn clip

        loader = make_clip_loader(waves, labels, window=crop, batch_size=int(cfg["batch_size"]), seed=seed)
    else:
        loader = make_crop_loader(waves, labels, crop_samples=crop, batch_size=int(cfg["batch_size"]), seed=seed)
    history = trainer.fit(loader, resume=checkpoint_dir is not None)
    model.eval()
    heads.eval()
    accuracy = float("nan")
    if heldout_waves is not None and len(heldout_waves):
        emb = embed(model, heldout_waves, cfg, device=device)
        accuracy = classification_accuracy(emb, heldout_labels, heads)
    return NivicModel(model=model, heads=heads, classes=list(classes), history=list(history),
                      heldout_accuracy=accuracy, config=dict(cfg))


def embed(model: torch.nn.Module, waves: np.ndarray, cfg: Mapping, *, device: str | torch.device = "cpu",
          progress: bool = False, desc: str = "embedding") -> np.ndarray:
    """``(N, T)`` whole clips -> ``(N, D)`` float32: the mean embedding of the crops of
    ``crop_seconds`` every ``embed_hop_seconds`` that cover each clip (``asd_utils.training.crops``);
    the model must be in eval mode. A clip's embedding depends on that clip alone."""

    sr = int(cfg.get("sample_rate", 16000))
    if isinstance(waves, list):  # clips at their own lengths (a clip shorter than a window is tiled to it)
        return embed_clips(model, waves, window=int(round(float(cfg["crop_seconds"]) * sr)),
                           hop=int(round(float(cfg["embed_hop_seconds"]) * sr)),
                           batch_size=int(cfg.get("embed_batch_size", 64)), device=device, progress=progress, desc=desc)
    return embed_crops(model, waves, crop_samples=int(round(float(cfg["crop_seconds"]) * sr)),
                       hop_samples=int(round(float(cfg["embed_hop_seconds"]) * sr)),
                       batch_size=int(cfg.get("embed_batch_size", 64)), device=device, progress=progress, desc=desc)


def embedding_ingredients(bank_waves: np.ndarray, test_waves: np.ndarray, test_names: Sequence[str]) -> dict:
    """Cache-key ingredients of a system's embeddings inside its training-run folder: the bank
    (training) and test waveforms (arrays or lists of clips: shape, dtype and sha256) and the test
    clip names (``asd_utils.storage.cache.cached_arrays``)."""
    as_f32 = lambda w: w if isinstance(w, list) else np.asarray(w, dtype=np.float32)  # noqa: E731
    return {"version": CACHE_VERSION, "bank": _hash_array(as_f32(bank_waves)), "test": _hash_array(as_f32(test_waves)),
            "names": [str(n) for n in test_names]}


# --------------------------------------------------------------------------------------------------
# back end
# --------------------------------------------------------------------------------------------------
def score(train_index: pd.DataFrame, train_emb: np.ndarray, test_index: pd.DataFrame, test_emb: np.ndarray,
          cfg: Mapping, *, seed: int = 0, progress: bool = False):
    """kNN back end per machine type and section (``pipeline.score_sections`` with
    ``asd_utils.scoring.KNNScorer(k, metric, separate_domains)``): embeddings L2-normalised, one
    bank per domain, score = min over the banks of the mean distance to the k nearest training
    clips; training scores cross-fitted (thresholds). cfg: ``k``, ``metric``, ``separate_domains``,
    ``n_splits``, ``l2_normalise``. Returns ``pipeline.SectionScores``."""

    scorer = KNNScorer(k=int(cfg["k"]), metric=str(cfg["metric"]), separate_domains=bool(cfg["separate_domains"]),
                       n_threads=1)
    return score_sections(scorer, train_index, train_emb, test_index, test_emb, n_splits=int(cfg["n_splits"]),
                          seed=seed, l2_normalise=bool(cfg["l2_normalise"]), progress=progress, desc="kNN")


# --------------------------------------------------------------------------------------------------
# one system end to end (what notebook 04 runs per system)
# --------------------------------------------------------------------------------------------------
@dataclass
class SystemData:
    """The clips every NIVIC system of one run shares.

    ``train_index`` / ``test_index``: the normal training clips (the kNN memory) and the test clips;
    ``waves_train`` / ``waves_test``: their waveforms (``(N, T)`` float32 arrays or lists of 1-D
    clips, at ``model_cfg['sample_rate']``); ``pseudo``: :func:`pseudo_label_all`'s labels;
    ``sim_rows`` / ``sim_waves``: :func:`simulate_supplemental`'s simulated clips; ``highpass_machines``
    and ``highpass_cfg`` (``cutoff_hz``, ``order``): the high-pass rule of :func:`highpass_decision`.
    Filtered waveforms are computed once per (part, high-pass on/off) and shared by the systems.
    """

    train_index: pd.DataFrame
    test_index: pd.DataFrame
    waves_train: np.ndarray | list
    waves_test: np.ndarray | list
    pseudo: pd.DataFrame
    sim_rows: pd.DataFrame
    sim_waves: np.ndarray | list
    highpass_machines: Sequence[str]
    highpass_cfg: Mapping
    _filtered: dict = field(default_factory=dict, repr=False)

    def filtered(self, part: str, on: bool, *, sample_rate: int):
        """Waveforms of ``part`` (``"train"``, ``"test"`` or ``"simulated"``), high-passed for the
        chosen machine types when ``on`` (:func:`apply_highpass`), computed once."""

        if (part, on) not in self._filtered:
            waves, rows = {"train": (self.waves_train, self.train_index), "test": (self.waves_test, self.test_index),
                           "simulated": (self.sim_waves, self.sim_rows)}[part]
            self._filtered[part, on] = apply_highpass(waves, rows["machine"], self.highpass_machines if on else [],
                                                      cutoff_hz=self.highpass_cfg["cutoff_hz"],
                                                      sample_rate=sample_rate, order=int(self.highpass_cfg["order"]))
        return self._filtered[part, on]


@dataclass
class SystemRun:
    """One trained and scored system: its ``options`` (:func:`system_options`), ``scores``
    (``pipeline.SectionScores``: test scores aligned with the test index, cross-fitted training
    scores), the kNN bank and test embeddings ``(N, D)`` / ``(M, D)``, the trainer ``history``, the
    C head's ``heldout_accuracy``, the class count, fit / held-out clip counts, the parameter count
    and the wall-clock ``seconds`` of the run."""

    name: str
    options: dict
    scores: object
    train_embeddings: np.ndarray
    test_embeddings: np.ndarray
    history: pd.DataFrame
    heldout_accuracy: float
    n_classes: int
    n_fit: int
    n_heldout: int
    n_parameters: int
    seconds: float

    def summary(self, table: pd.DataFrame) -> str:
        """One line on the run, with the official score of its evaluated ``table``."""
        loss = self.history["loss"].iloc[-1] if len(self.history) else float("nan")
        return (f"{self.name}: {self.n_classes} classes, {self.n_fit} training / {self.n_heldout} held-out clips, "
                f"{self.n_parameters:,} parameters, final loss {loss:.3f}, held-out accuracy "
                f"{self.heldout_accuracy:.3f}, official score {100 * official_score(table):.2f} % "
                f"({self.seconds:.0f} s)")


def run_system(name: str, data: SystemData, model_cfg: Mapping, scoring_cfg: Mapping, *, cache_dir=None,
               seed: int = 0, device: str | torch.device = "cpu", progress: bool = False) -> SystemRun:
    """Train (or restore) system ``name`` (one of :data:`SYSTEMS`), embed and score it.

    1. Classes (:func:`class_table`): true or pseudo attributes, plus the simulated classes when the
       system mixes supplemental clips (their waveforms follow the training clips).
    2. High-pass (when on) of the training, simulated and test clips (:meth:`SystemData.filtered`).
    3. A stratified ``model_cfg['holdout_fraction']`` of the clips is held out
       (``finetune.holdout_split``); :func:`train_model` fits the rest, in a checkpoint folder of
       ``cache_dir`` keyed by the config, the StatEx/FeatEx switch, the clips and the labels
       (``pipeline.training_run_dir``; None: no cache), so a finished run is restored.
    4. :func:`embed` of the normal training clips (the bank; no simulated clip) and the test clips,
       cached in the run folder under :func:`embedding_ingredients`.
    5. :func:`score` with ``scoring_cfg``: the kNN back end per machine type and section.

    Test labels enter nothing here. Returns a :class:`SystemRun`.
    """

    start = time.perf_counter()
    opt = system_options(name)
    sr = int(model_cfg["sample_rate"])
    train_index, test_index = data.train_index, data.test_index
    rows = class_table(train_index, data.pseudo, use_pseudo=opt["pseudo_labels"],
                       simulated=data.sim_rows if opt["supplemental"] else None)
    on = bool(opt["highpass"])
    waves = data.filtered("train", on, sample_rate=sr)
    if opt["supplemental"] and len(data.sim_waves):  # class_table lists the simulated rows after the training rows
        waves = concat(waves, data.filtered("simulated", on, sample_rate=sr))
    test_waves = data.filtered("test", on, sample_rate=sr)
    labels, classes = build_class_labels(rows, ["machine", "section", CLASS_COLUMN, "domain"])
    fit_idx, held_idx = holdout_split(labels, float(model_cfg["holdout_fraction"]), seed=seed)
    fit_waves = take(waves, fit_idx)
    run_dir = training_run_dir(cache_dir, name, seed=seed, classes=classes,
                               cfg={**model_cfg, "ssl": opt["ssl"], "clips": clips_fingerprint(fit_waves)},
                               waves=np.zeros(0, np.float32), labels=labels[fit_idx])
    result = train_model(fit_waves, labels[fit_idx], classes, model_cfg, ssl=opt["ssl"], seed=seed, device=device,
                         heldout_waves=take(waves, held_idx), heldout_labels=labels[held_idx], progress=progress,
                         checkpoint_dir=run_dir)
    bank_waves = waves[: len(train_index)]  # normal training clips only (no simulated clip in the memory)

    def compute():  # the bank and the test clips, in this order
        return {part: embed(result.model, w, model_cfg, device=device, progress=progress, desc=f"embedding {part}")
                for part, w in (("train", bank_waves), ("test", test_waves))}

    ingredients = None if run_dir is None else embedding_ingredients(bank_waves, test_waves, test_index["file_name"])
    cached = cached_arrays(run_dir, ingredients, compute, code=__name__, name="embeddings")
    scores = score(train_index, cached["train"], test_index, cached["test"], scoring_cfg, seed=seed,
                   progress=progress)
    return SystemRun(name=name, options=opt, scores=scores, train_embeddings=cached["train"],
                     test_embeddings=cached["test"], history=pd.DataFrame(result.history),
                     heldout_accuracy=result.heldout_accuracy, n_classes=len(classes), n_fit=len(fit_idx),
                     n_heldout=len(held_idx), n_parameters=result.model.num_parameters(),
                     seconds=time.perf_counter() - start)
