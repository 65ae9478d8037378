"""What every system of every notebook is made of, in one place.

The comparison notebook (08) shows, for each system that wrote results, its front end (input
features, backbone, how the backbone is adapted), training objective, data, back end and
ensemble, and which row of which report's table it reproduces. Those facts live here, not in the
notebook, so that one correction reaches every table.

Entries are keyed by the notebook's two-digit number and the system name the notebook records
(``RunContext.record``). A system that has no entry (a new notebook, a new variant) still appears
in every table, marked :data:`NOT_CATALOGUED`: nothing needs to change here for a new notebook's
results to be picked up.

``reported_as`` pairs a system with ``(report id, system name as the report's table prints it)``;
the report id is the three-digit prefix of its ``papers/<id>_*.csv`` tables. Report 000 and 004
print the official autoencoder baseline, so notebook 01's systems map to rows of both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

import pandas as pd

__all__ = [
    "ADAPTATIONS",
    "CATALOGUE",
    "NOT_CATALOGUED",
    "SystemCard",
    "catalogue_table",
    "lookup",
    "notebook_number",
    "reported_mapping",
]

NOT_CATALOGUED = "not catalogued"
ADAPTATIONS = ("trained from scratch", "frozen", "LoRA", "full fine-tuning", "no training", "ensemble")


@dataclass(frozen=True)
class SystemCard:
    """One system of one notebook.

    notebook: two-digit notebook number (``"02"``); system: the name in the results CSV;
    report: report id (``"000"`` ... ``"004"``, ``"baseline"`` for the official baseline);
    features: the input representation; backbone: the network (or ``-``); adaptation: one of
    :data:`ADAPTATIONS`; objective: the training objective; data: the training data used;
    back_end: how embeddings become anomaly scores; ensemble: what is combined (``-`` if nothing);
    reported_as: ``((report id, reported system name), ...)``; status: ``"landed"`` when written from
    the notebook's code, ``"from the plan"`` when written from the plan before the notebook landed.
    """

    notebook: str
    system: str
    report: str
    features: str
    backbone: str
    adaptation: str
    objective: str
    data: str
    back_end: str
    ensemble: str = "-"
    reported_as: tuple[tuple[str, str], ...] = ()
    status: str = "landed"

    def __post_init__(self):
        if self.adaptation not in ADAPTATIONS:
            raise ValueError(f"{self.notebook} {self.system}: adaptation {self.adaptation!r} not in {ADAPTATIONS}")


_DEV = "development training set (normal clips)"
_CLASSES = "machine x section x attributes x domain"

_AE = dict(
    notebook="01", report="baseline", features="log-mel (128 bins, 1024/512), 5 stacked frames (640-d)",
    backbone="fully connected autoencoder (4 x 128 hidden, 8-d bottleneck)", adaptation="trained from scratch",
    objective="frame reconstruction (MSE)", data=_DEV,
)
_GENREP = dict(
    notebook="02", report="000", features="BEATs layer-5 tokens, GenRep pooling (time mean per frequency-patch row)",
    backbone="BEATs", adaptation="frozen", objective="none (pretrained self-supervised model used as is)",
)
_GENREP_BACK = "kNN (k = 1, Euclidean), separate source/target banks, MemMixup target bank"
_WEIGHT = ("statistical feature-difference weight (TWFR-GMM on log-mel statistics + GMM on embeddings, "
           "training statistics)")
_THREE = dict(
    notebook="06", report="004", features="waveform, whole-clip |FFT|, STFT spectrogram (clips tiled to 12 s)",
    backbone="three subnetworks (1-D CNN, |FFT| CNN, ResNet), 512-d", adaptation="trained from scratch",
    objective=f"sub-cluster AdaCos on {_CLASSES} classes, mixup", data=_DEV,
)
_PRETRAINED_06 = dict(
    notebook="06", report="004", features="waveform 16 kHz, last hidden layer mean-pooled",
    adaptation="full fine-tuning", objective=f"sub-cluster AdaCos on {_CLASSES} classes, mixup", data=_DEV,
    back_end="K-Means per machine type/section (cosine) + every target clip as a centre",
)
_ENSEMBLE_06 = dict(
    notebook="06", report="004", features="(its members')", backbone="(its members')", adaptation="ensemble",
    objective="(its members')", data=_DEV,
    back_end="scores z-normalised with cross-fitted training scores, weighted mean",
)
_EAT_ARC = f"ArcFace on {_CLASSES} classes (domain only where attributes are hidden)"
_EAT_DATA = "development training set + supplemental clean clips; noise-only clips mixed in at random SNR"
_MYPS = dict(notebook="03", report="001", features="EAT fbank, mean of all patch embeddings", backbone="EAT",
             objective=_EAT_ARC, data=_EAT_DATA, status="from the plan")
_KNN_MYPS = "kNN (k = 1, cosine), one library of normal training embeddings"
_MA = ("mechanism analysis (time/frequency/wavelet indicators vs training baselines) replaces the scores of "
       "the configured machine types")
_CKPT = "checkpoints of several learning rates and steps, z-normalised by training scores, weighted sum"
_NIVIC = dict(
    notebook="04", report="002",
    features="log-mel 200-8000 Hz (clips tiled to 10 s), high-pass 1 kHz for types with most training power "
             "above it; whole-clip |FFT|",
    backbone="SE-ResNet18 + |FFT| branch", adaptation="trained from scratch",
    objective="sub-cluster AdaCos on machine x section x (true or pseudo) attributes x domain; mixup, StatEx, "
              "FeatEx (C/3C/9C heads)",
    data="development training set + supplemental clean clips mixed with noise clips (extra classes); "
         "pseudo attribute labels for hidden-attribute types",
    back_end="kNN (k = 1, cosine), one bank per domain, minimum", status="from the plan",
)
_XJU = dict(
    notebook="05", report="003", adaptation="full fine-tuning",
    objective="sub-center ArcFace (margin 0.2), OS-SCL: mixup cross-entropy + supervised contrastive "
              "(T = 0.04), EMA weights",
    data="development training set (supplemental clips: a config switch, off by default)",
    back_end="kNN, separate source/target libraries, SMOTE on target (ratio 0.2, 3 neighbours), minimum",
    status="from the plan",
)
_XJU_NO_SMOTE = "kNN, separate source/target libraries, minimum (no SMOTE)"
_XJU_SYSTEMS = (  # (name, features, backbone); branches map to 128-d each and are concatenated
    ("BEATs-FFT", "BEATs (mean-pooled) + whole-clip |FFT| CNN, 256-d", "BEATs + |FFT| branch"),
    ("EAT-FFT", "EAT (CLS token) + whole-clip |FFT| CNN, 256-d", "EAT + |FFT| branch"),
    ("EAT-BEATs", "EAT (CLS token) + BEATs (mean-pooled), 256-d", "EAT + BEATs"),
    ("EAT-BEATs-FFT", "EAT + BEATs + whole-clip |FFT| CNN (|FFT| part L2-normalised), 384-d",
     "EAT + BEATs + |FFT| branch"),
)

CATALOGUE: tuple[SystemCard, ...] = (
    # -- 01: the official autoencoder baseline -----------------------------------------------------
    SystemCard(system="AE-MSE", back_end="mean reconstruction error (MSE) of the clip's frames",
               reported_as=(("000", "AE-MSE"), ("001", "AE-MSE"), ("002", "Baseline"), ("004", "AE-MSE")), **_AE),
    SystemCard(system="AE-MAHALA",
               back_end="Mahalanobis distance of the reconstruction residuals (training covariance per domain)",
               reported_as=(("000", "AE-MAHALA"), ("001", "AE-MAHALA"), ("004", "AE-MAHALA")), **_AE),
    # -- 02: GISP-HEU (report 000) -----------------------------------------------------------------
    SystemCard(system="System-1", data=_DEV, back_end=f"{_GENREP_BACK}; {_WEIGHT}",
               reported_as=(("000", "System-1"),), **_GENREP),
    SystemCard(system="System-1 w/o weighting", data=_DEV, back_end=_GENREP_BACK, **_GENREP),
    SystemCard(system="System-2", data=f"{_DEV} + supplemental clean and noise clips (weight statistics)",
               back_end=f"{_GENREP_BACK}; {_WEIGHT}", reported_as=(("000", "System-2"),), **_GENREP),
    SystemCard(notebook="02", system="System-3", report="000",
               features="EAT patch tokens, attentive statistics pooling (AnoPatch)", backbone="EAT (ViT, AudioSet)",
               adaptation="full fine-tuning", objective=f"ArcFace on {_CLASSES} classes",
               data=f"{_DEV} (+ other years' development sets when given)",
               back_end="kNN on normal training embeddings", reported_as=(("000", "System-3"),)),
    SystemCard(notebook="02", system="System-4", report="000", features="(its members')", backbone="(its members')",
               adaptation="ensemble", objective="(its members')", data="(its members')",
               back_end="scores z-normalised with training scores",
               ensemble="weighted sum of Systems 1-3, one weight set",
               reported_as=(("000", "Ensemble System"),)),
    # -- 03: MYPS (report 001) ---------------------------------------------------------------------
    SystemCard(system="EAT-LoRA", adaptation="LoRA", back_end=_KNN_MYPS, ensemble=_CKPT,
               reported_as=(("001", "MYPS best system"),), **_MYPS),
    SystemCard(system="EAT-LoRA-MA", adaptation="LoRA", back_end=f"{_KNN_MYPS}; {_MA}", ensemble=_CKPT, **_MYPS),
    SystemCard(system="EAT-FFT", adaptation="full fine-tuning", back_end=_KNN_MYPS, ensemble=_CKPT,
               reported_as=(("001", "MYPS best system"),), **_MYPS),
    SystemCard(system="EAT-FFT-MA", adaptation="full fine-tuning", back_end=f"{_KNN_MYPS}; {_MA}", ensemble=_CKPT,
               **_MYPS),
    SystemCard(notebook="03", system="MA", report="001",
               features="time-domain (RMS, crest factor, kurtosis, skewness), envelope spectrum, "
                        "wavelet packet entropy",
               backbone="-", adaptation="no training", objective="none (robust statistics of normal training clips)",
               data=_DEV, back_end="exceedances of the indicators over their training baselines",
               status="from the plan"),
    SystemCard(system="EAT-LoRA sep-lib", adaptation="LoRA",
               back_end="kNN (k = 1, cosine), separate source and target libraries", ensemble=_CKPT, **_MYPS),
    SystemCard(system="EAT-FFT sep-lib", adaptation="full fine-tuning",
               back_end="kNN (k = 1, cosine), separate source and target libraries", ensemble=_CKPT, **_MYPS),
    # -- 04: NIVIC (report 002) --------------------------------------------------------------------
    SystemCard(system="Full", reported_as=(("002", "Our system"),), **_NIVIC),
    SystemCard(system="No pseudo-labels", **{**_NIVIC, "objective": _NIVIC["objective"].replace(
        "(true or pseudo) attributes", "true attributes (domain only where hidden)"),
        "data": "development training set + supplemental clean clips mixed with noise clips (extra classes)"}),
    SystemCard(system="No StatEx/FeatEx", **{**_NIVIC, "objective": "sub-cluster AdaCos on machine x section x "
                                             "(true or pseudo) attributes x domain; mixup only"}),
    SystemCard(system="No high-pass",
               **{**_NIVIC, "features": "log-mel 200-8000 Hz (clips tiled to 10 s), no high-pass; whole-clip |FFT|"}),
    SystemCard(system="No supplemental mixing",
               **{**_NIVIC, "data": "development training set; pseudo attribute labels for hidden-attribute types"}),
    # -- 05: XJU (report 003); each system also without SMOTE (ablation) -------------------------------
    *(SystemCard(system=name + suffix, features=features, backbone=backbone, reported_as=reported_as if not suffix
                 else (), **{**_XJU, "back_end": back_end})
      for name, features, backbone in _XJU_SYSTEMS
      for suffix, back_end, reported_as in (("", _XJU["back_end"], (("003", name),)),
                                            (" no-SMOTE", _XJU_NO_SMOTE, ()))),
    # -- 06: IOA-CAS (report 004) ------------------------------------------------------------------
    SystemCard(system="Three-subnet GMM", back_end="GMM per machine type/section (negative log-likelihood)",
               reported_as=(("004", "Three-subnet GMM"),), **_THREE),
    SystemCard(system="Three-subnet K-Means",
               back_end="K-Means per machine type/section (cosine) + every target clip as a centre",
               reported_as=(("004", "Three-subnet K-Means"),), **_THREE),
    SystemCard(system="HuBERT", backbone="HuBERT", reported_as=(("004", "HuBERT"),), **_PRETRAINED_06),
    SystemCard(system="BEATs", backbone="BEATs", reported_as=(("004", "BEATs"),), **_PRETRAINED_06),
    SystemCard(system="wav2vec 2.0", backbone="wav2vec 2.0", reported_as=(("004", "wav2vec 2.0"),), **_PRETRAINED_06),
    SystemCard(system="WavLM", backbone="WavLM", reported_as=(("004", "WavLM"),), **_PRETRAINED_06),
    SystemCard(system="UniSpeech-SAT", backbone="UniSpeech-SAT", reported_as=(("004", "UniSpeech-SAT"),),
               **_PRETRAINED_06),
    SystemCard(system="Ensemble-1", ensemble="Three-subnet GMM + K-Means", reported_as=(("004", "Ensemble-1"),),
               **_ENSEMBLE_06),
    SystemCard(system="Ensemble-2", ensemble="three subnetworks (0.5) + the five fine-tuned pretrained models",
               reported_as=(("004", "Ensemble-2"),), **_ENSEMBLE_06),
    SystemCard(system="Ensemble-3", ensemble="three subnetworks (0.5) + HuBERT", reported_as=(("004", "Ensemble-3"),),
               **_ENSEMBLE_06),
    SystemCard(system="Ensemble-4",
               ensemble="three subnetworks (0.5) + pretrained models that pass the held-out training-accuracy filter",
               reported_as=(("004", "Ensemble-4"),), **_ENSEMBLE_06),
)

_BY_KEY = {(card.notebook, card.system): card for card in CATALOGUE}
if len(_BY_KEY) != len(CATALOGUE):  # pragma: no cover - guarded by tests
    raise RuntimeError("duplicate (notebook, system) in the catalogue")

DESCRIPTION_COLUMNS = ("features", "backbone", "adaptation", "objective", "data", "back_end", "ensemble")


def notebook_number(notebook: str) -> str:
    """``"02_gisp_heu_beats_statistical_weighting"`` or ``"02"`` -> ``"02"`` (the key of entries)."""
    head = str(notebook).split("_", 1)[0]
    return head if head.isdigit() else str(notebook)


def lookup(notebook: str, system: str) -> SystemCard | None:
    """The entry of ``system`` in ``notebook`` (full stem or number), or None if not catalogued."""
    return _BY_KEY.get((notebook_number(notebook), str(system)))


def catalogue_table(systems: Iterable[tuple[str, str]] | pd.DataFrame | None = None) -> pd.DataFrame:
    """What each system is made of: one row per (notebook, system).

    systems: ``(notebook, system)`` pairs, or a DataFrame with those columns (e.g. the collected
    results); None lists the whole catalogue. Systems without an entry get :data:`NOT_CATALOGUED`
    in every description column, so they are never silently dropped.

    Columns: ``notebook, system, report, features, backbone, adaptation, objective, data,
    back_end, ensemble, reported_as`` (``"000: System-1; ..."``), ``status``.
    """
    if systems is None:
        pairs = [(card.notebook, card.system) for card in CATALOGUE]
    elif isinstance(systems, pd.DataFrame):
        pairs = list(dict.fromkeys(zip(systems["notebook"].astype(str), systems["system"].astype(str))))
    else:
        pairs = list(dict.fromkeys((str(n), str(s)) for n, s in systems))
    rows = []
    for notebook, system in pairs:
        card = lookup(notebook, system)
        if card is None:
            rows.append({"notebook": notebook, "system": system, "report": NOT_CATALOGUED,
                         **{c: NOT_CATALOGUED for c in DESCRIPTION_COLUMNS}, "reported_as": "",
                         "status": NOT_CATALOGUED})
            continue
        entry = asdict(card)
        entry["notebook"] = notebook
        entry["reported_as"] = "; ".join(f"{r}: {name}" for r, name in card.reported_as)
        rows.append(entry)
    columns = [f.name for f in fields(SystemCard)]
    return pd.DataFrame(rows, columns=columns)


def reported_mapping(systems: Iterable[tuple[str, str]] | pd.DataFrame | None = None) -> pd.DataFrame:
    """``notebook, system, report, reported_system``: one row per reported table row a system
    reproduces (a system may reproduce rows of several reports; most reproduce one)."""
    table = catalogue_table(systems)
    rows = []
    for notebook, system in zip(table["notebook"], table["system"]):
        card = lookup(notebook, system)
        for report, name in (card.reported_as if card else ()):
            rows.append({"notebook": notebook, "system": system, "report": report, "reported_system": name})
    return pd.DataFrame(rows, columns=["notebook", "system", "report", "reported_system"])
