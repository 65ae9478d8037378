"""Diagnostic (issue 9): how much anomaly information do the trained embeddings hold at all?

A *supervised* linear probe, run after a `make reproduce` of the default profile: for each
machine type, a logistic regression (standardised inputs, C = 0.1) is trained on the test clips'
embeddings with their normal/anomaly labels and scored on held-out test clips (stratified 5-fold
cross-validation, repeated over 5 shuffles, AUC averaged). It reads **test labels**, so it is a
diagnosis only: no setting, system or score of the compendium is chosen by its numbers.

If even a probe that *sees* anomalies cannot separate them in an embedding, no unsupervised back
end (k-means, kNN, GMM) on that embedding can. The reference row is the autoencoder's own front
end without any training: per-clip mean and standard deviation over time of the 128-band log-mel
spectrogram (n_fft 1024, hop 512), as the official baseline computes it. Two more rows split it:
the mean alone (the clip's stationary spectral envelope) and the standard deviation alone (how
each band varies over time), to show where in the spectrum the anomalies of a root lie.

Embeddings are read from the run's caches: of the files of each kind under ``cache/<profile>/``,
the newest one with one row per test clip of the root. A system with no such cache is left out
and named; the files used are recorded in the JSON output.

    python probes/probe_anomaly_information.py [--profile default] [--out probes/results]
    python probes/probe_anomaly_information.py --data-root data/bench_unseen --label unseen
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asd_utils.data import discover  # noqa: E402
from asd_utils.data.audio import load_audio  # noqa: E402
from asd_utils.evaluation.results import to_markdown  # noqa: E402
from asd_utils.methods import pipeline  # noqa: E402
from asd_utils.notebook.tour import logmel_statistics  # noqa: E402
from asd_utils.storage.atomic import atomic_path  # noqa: E402
from asd_utils.synth import ensure_dataset  # noqa: E402
from asd_utils.synth.realism import probe_auc  # noqa: E402  (the one linear probe; also used by the realism report)

# system -> (glob under cache/<profile>/, array name in the .npz); all trained from scratch or,
# for 05, fused with stand-in backbones (the note of each result row says which).
CACHED_EMBEDDINGS = {
    "06 Three-subnet (K-Means/GMM input)": ("06_*/training/three_subnet_*/embeddings_test_*.npz", "embeddings"),
    "04 Full (SE-ResNet18, StatEx/FeatEx)": ("04_*/training/Full_*/embeddings_*.npz", "test"),
    "05 BEATs-FFT (stand-in BEATs + |FFT| branch)": ("05_*/training/xju_BEATs-FFT_*/embeddings_*_test_*.npz",
                                                      "embeddings"),
    "05 EAT-FFT (stand-in EAT + |FFT| branch)": ("05_*/training/xju_EAT-FFT_*/embeddings_*_test_*.npz", "embeddings"),
}
REFERENCE = "log-mel mean + std over time (no training)"
REFERENCE_MEAN = "log-mel mean over time only (no training)"
REFERENCE_STD = "log-mel std over time only (no training)"


def log_mel_statistics(paths: list[str]) -> np.ndarray:
    """Clip paths -> (clips, 256): mean and std over frames of each whole clip's 128-band log-mel
    (``asd_utils.notebook.tour.logmel_statistics``, one clip at a time so clips may differ in length)."""
    return np.concatenate([logmel_statistics(load_audio(path)[None], n_mels=128) for path in paths])


def reference_features(paths: list[str]) -> dict[str, np.ndarray]:
    """The untrained reference rows: log-mel mean + std ``(clips, 256)``, and its two halves, the
    mean over time ``(clips, 128)`` and the standard deviation over time ``(clips, 128)``."""
    stats = log_mel_statistics(paths)
    return {REFERENCE: stats, REFERENCE_MEAN: stats[:, :128], REFERENCE_STD: stats[:, 128:]}


def data_label(root: Path) -> str:
    """How the output tables name a root: "Synthetic data" for a generated root, else its name."""
    return "Synthetic data" if (root / "synth_manifest.json").exists() else f"Data: {root.name}"


def write_outputs(stem: Path, payload: dict, header: str, table: pd.DataFrame, floatfmt: str) -> None:
    """``stem.json`` (the payload) and ``stem.md`` (header + table), each written atomically."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(stem.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(payload, indent=1))
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(header + to_markdown(table, floatfmt=floatfmt, index=True) + "\n")
    print(f"wrote {stem}.json and .md")


def newest_matching(cache: Path, pattern: str, key: str, n_rows: int) -> tuple[Path, np.ndarray] | None:
    """The newest cache file matching ``pattern`` whose array ``key`` has ``n_rows`` rows."""
    for path in sorted(cache.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True):
        with np.load(path) as arrays:
            if key in arrays.files and len(arrays[key]) == n_rows:
                return path, arrays[key]
    return None


def diagnostic_arguments(description: str, argv: list[str] | None) -> argparse.Namespace:
    """The options every cache-reading diagnostic takes: ``--profile``, ``--data-root``, ``--label``
    and ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="DCASE-layout root the notebooks ran on (default: the profile's synthetic data)")
    parser.add_argument("--label", default=None, help="name of the root in the output files (default: the profile)")
    parser.add_argument("--out", type=Path, default=ROOT / "probes" / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = diagnostic_arguments(__doc__.split("\n\n")[0], argv)

    root = args.data_root.resolve() if args.data_root else ensure_dataset(args.profile)
    index = discover(root)
    _, test = pipeline.split_index(index)
    labels = test["is_anomaly"]
    if labels.isna().any():
        raise ValueError(f"{root}: {int(labels.isna().sum())} test clips carry no normal/anomaly label "
                         "(blinded evaluation data); the probe needs labelled test clips")
    cache = ROOT / "cache" / args.profile
    features: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for system, (pattern, key) in CACHED_EMBEDDINGS.items():
        found = newest_matching(cache, pattern, key, len(test))
        if found is None:
            print(f"left out {system}: no cache {cache / pattern} with {len(test)} rows (run the notebook first)")
            continue
        features[system], sources[system] = found[1], str(found[0].relative_to(ROOT))
    features.update(reference_features(test["path"].tolist()))

    is_anomaly = labels.to_numpy().astype(int)
    rows = []
    for machine in sorted(test["machine"].unique()):
        clips = np.flatnonzero(test["machine"].to_numpy() == machine)
        for system, array in features.items():
            rows.append({"features": system, "machine": machine,
                         "probe_auc": probe_auc(array[clips], is_anomaly[clips])})
    table = pd.DataFrame(rows).pivot(index="features", columns="machine", values="probe_auc")
    table["mean"] = table.mean(axis=1)
    table = table.sort_values("mean")
    print(table.round(3).to_string())

    payload = {"profile": args.profile, "root": args.label or args.profile, "sources": sources,
               "probe_auc": table.round(4).to_dict(orient="index")}
    header = ("Linear-probe AUC (supervised, cross-validated on test clips: a diagnosis, never a "
              f"choice). {data_label(root)}; stand-in backbones where named. Not the reports' results.\n\n")
    write_outputs(args.out / f"probe_anomaly_information_{args.label or args.profile}", payload, header, table, ".2f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
