"""Tests of asd_utils.evaluation.channel_comparison and results.note_channel on hand-written result folders."""

from __future__ import annotations

import pandas as pd
import pytest

from asd_utils.evaluation.channel_comparison import channel_side_by_side, folder_channel
from asd_utils.evaluation.metrics import hmean
from asd_utils.evaluation.results import note_channel, write_results


def _table(values):
    return pd.DataFrame([{"machine": m, "section": "00", "auc_source": a, "auc_target": b, "pauc": c}
                         for m, (a, b, c) in values.items()])


def _run(folder, channel, systems):
    note = f"synthetic data; channel {channel} of two-channel DCASE 2026 clips; profile smoke"
    for (notebook, system), values in systems.items():
        write_results(_table(values), notebook=notebook, system=system, profile="smoke", results_dir=folder,
                      note=note)
    return folder


def test_note_channel():
    assert note_channel("synthetic data; channel noise_aware of two-channel DCASE 2026 clips; profile smoke") \
        == "noise_aware"
    assert note_channel("synthetic data; profile smoke") is None


def test_side_by_side_by_hand(tmp_path):
    near = _run(tmp_path / "near", "near", {
        ("01_baseline_autoencoder", "AE-MSE"): {"fan": (0.8, 0.6, 0.5), "valve": (0.7, 0.7, 0.6)},
        ("06_ioa", "GMM"): {"fan": (0.9, 0.9, 0.9), "valve": (0.9, 0.9, 0.9)},
    })
    aware = _run(tmp_path / "aware", "noise_aware", {
        ("01_baseline_autoencoder", "AE-MSE"): {"fan": (0.9, 0.6, 0.5), "valve": (0.7, 0.8, 0.6)},
        ("05_xju", "EAT-FFT"): {"fan": (0.5, 0.5, 0.5), "valve": (0.5, 0.5, 0.5)},
    })
    table = channel_side_by_side(near, aware, intervals=False)
    assert list(table.columns) == ["notebook", "system", "near", "noise_aware", "difference"]
    assert list(zip(table.notebook, table.system)) == [("01_baseline_autoencoder", "AE-MSE"), ("06_ioa", "GMM"),
                                                       ("05_xju", "EAT-FFT")]
    first = table.iloc[0]
    assert first["near"] == pytest.approx(hmean([0.8, 0.6, 0.5, 0.7, 0.7, 0.6]))
    assert first["noise_aware"] == pytest.approx(hmean([0.9, 0.6, 0.5, 0.7, 0.8, 0.6]))
    assert first["difference"] == pytest.approx(first["noise_aware"] - first["near"])
    assert table.iloc[1]["near"] == pytest.approx(0.9) and pd.isna(table.iloc[1]["noise_aware"])
    assert pd.isna(table.iloc[2]["near"]) and table.iloc[2]["noise_aware"] == pytest.approx(0.5)


def test_folders_must_state_one_different_channel_each(tmp_path):
    near = _run(tmp_path / "near", "near", {("01", "A"): {"fan": (0.8, 0.6, 0.5)}})
    again = _run(tmp_path / "again", "near", {("01", "A"): {"fan": (0.8, 0.6, 0.5)}})
    with pytest.raises(ValueError, match="both state channel 'near'"):
        channel_side_by_side(near, again, intervals=False)
    mono = tmp_path / "mono"
    write_results(_table({"fan": (0.8, 0.6, 0.5)}), notebook="01", system="A", profile="smoke", results_dir=mono,
                  note="synthetic data; profile smoke")
    with pytest.raises(ValueError, match="mono: the result notes state no channel"):
        channel_side_by_side(mono, near, intervals=False)
    _run(near, "far", {("02", "B"): {"fan": (0.8, 0.6, 0.5)}})
    with pytest.raises(ValueError, match=r"several channels \['far', 'near'\]"):
        folder_channel(pd.read_csv(near / "01.csv").pipe(lambda a: pd.concat([a, pd.read_csv(near / "02.csv")])),
                       near)
