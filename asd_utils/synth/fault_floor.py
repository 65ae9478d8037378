"""The realism report's anomaly shift with and without the faults: how much of it is sampling.

    python -m asd_utils.synth.fault_floor ROOT [--out FILE.csv]

The realism report (:mod:`.realism`) gives, per machine type, the anomaly shift of the mean band
level (mean over the log-mel bands of |mean over anomalous test clips - mean over normal test
clips|, dB) and its ratio to the per-band level spread among normal clips. With a few dozen
clips per label that shift is not zero even when the anomalies change nothing: the two means
differ by sampling alone. For a generated root this module measures that floor directly. It
re-plans the root's anomalous test clips from its manifest and renders each one again *without
its fault* (same machine, attributes, room, microphone, noise and level draws; the fault's own
random draws are then missing, so the room's reverberation tail is another draw of the same
room). Their shift against the root's normal test clips is the shift that the clip count gives
with no fault at all.

The output has one row per machine type: ``band_spread_db`` (among the normal test clips),
``anomaly_shift_db`` and ``anomaly_shift_over_spread`` (the root's clips, as in the realism
report), ``fault_free_shift_db`` and ``fault_free_shift_over_spread`` (the anomalous clips
rendered without their fault, against the same normal clips and spread). It reads no method's
score; the labels it reads are the generator's own.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from asd_utils.synth.generate import clip_duration, get_profile, plan_machine, read_manifest, render_job, to_pcm16
from asd_utils.synth.realism import band_level_statistics, clip_features, features_of_files

COLUMNS = ("machine", "band_spread_db", "anomaly_shift_db", "anomaly_shift_over_spread", "fault_free_shift_db",
           "fault_free_shift_over_spread")


def fault_free_levels(jobs, profile) -> np.ndarray:
    """Log-mel means ``(len(jobs), 128)`` dB of the clips of ``jobs`` rendered without a fault, as
    the generator writes them (16-bit PCM, read back as ``int / 32768``)."""
    waves = [to_pcm16(render_job(replace(j, anomaly=None, severity=0.0), clip_duration(profile, j))["mix"])
             / 32768.0 for j in jobs]
    out = np.zeros((len(waves), 128))
    by_length: dict[int, list[int]] = {}
    for i, wave in enumerate(waves):
        by_length.setdefault(len(wave), []).append(i)
    for rows in by_length.values():
        out[rows] = clip_features(np.stack([waves[i] for i in rows]))["logmel_mean"]
    return out


def floor_table(root: str | Path) -> pd.DataFrame:
    """One row per machine type of the generated ``root`` (columns :data:`COLUMNS`)."""
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None:
        raise ValueError(f"{root} has no synth_manifest.json: not a generated synthetic root")
    profile = get_profile(manifest["profile"])
    rows = []
    for key, name in manifest["names"].items():
        jobs = [j for j in plan_machine(key, name, profile, manifest["seed"], manifest["variant"]) if j.split == "test"]
        labels = np.array([j.label == "anomaly" for j in jobs], dtype=float)
        domains = np.array([j.domain for j in jobs], dtype=object)
        levels = features_of_files([str(root / j.relpath) for j in jobs])["logmel_mean"]
        real, _ = band_level_statistics(levels, labels, domains)
        free = levels.copy()
        anomalous = labels == 1
        free[anomalous] = fault_free_levels([j for j in jobs if j.label == "anomaly"], profile)
        shift = float(np.abs(free[anomalous].mean(axis=0) - free[~anomalous].mean(axis=0)).mean())
        rows.append({"machine": name, "band_spread_db": real["band_spread_db"],
                     "anomaly_shift_db": real["anomaly_shift_db"],
                     "anomaly_shift_over_spread": real["anomaly_shift_over_spread"],
                     "fault_free_shift_db": shift, "fault_free_shift_over_spread": shift / real["band_spread_db"]})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asd_utils.synth.fault_floor",
                                     description="Anomaly shift of a synthetic root with and without its faults.")
    parser.add_argument("root", type=Path, help="a root written by python -m asd_utils.synth")
    parser.add_argument("--out", type=Path, default=None, help="CSV file to write (default: print only)")
    args = parser.parse_args(argv)
    table = floor_table(args.root)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.round(4).to_csv(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
