"""Submission files of a DCASE 2026 root, scored as the official evaluator scores them.

The 2026 evaluator (``nttcslab/dcase2026_task2_evaluator``) keeps the 2024/2025 interface: per
machine type and section, ``anomaly_score_<machine>_section_<ss>_test.csv`` and
``decision_result_...`` rows ``file_name,value`` without header, joined by file name to
``ground_truth_data/ground_truth_<machine>_section_<ss>_test.csv`` (``file,0|1``) and
``ground_truth_domain/...`` (``file,0 source|1 target``); AUC (source/target) over that domain's
normals and every anomaly, pAUC at FPR 0.1 over all clips (docs/dcase2026.md). The reader below
works from the files alone, as the evaluator does, and must give the project's own numbers.
"""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
from dcase2026_fixture import EVAL_MACHINE, make_dcase2026_root
from sklearn.metrics import roc_auc_score

from asd_utils.data import discover, load_batch
from asd_utils.evaluation.metrics import evaluate
from asd_utils.evaluation.submission import decision_file_name, score_file_name, write_submissions


def _rows(path):
    with open(path, newline="") as stream:
        return list(csv.reader(stream))


def _evaluator_from_files(truth_dir, submission_dir, machine, section="00"):
    """AUC (source), AUC (target), pAUC of one section from the CSV files only."""
    name = f"ground_truth_{machine}_section_{section}_test.csv"
    label = {f: int(v) for f, v in _rows(truth_dir / "ground_truth_data" / name)}
    domain = {f: int(v) for f, v in _rows(truth_dir / "ground_truth_domain" / name)}
    scores = {f: float(v) for f, v in _rows(submission_dir / score_file_name(machine, section))}
    assert set(scores) == set(label)  # every test clip scored, nothing else
    files = sorted(label)
    y = np.array([label[f] for f in files])
    d = np.array([domain[f] for f in files])
    s = np.array([scores[f] for f in files])
    out = {}
    for key, code in (("auc_source", 0), ("auc_target", 1)):
        keep = ((d == code) & (y == 0)) | (y == 1)
        out[key] = roc_auc_score(y[keep], s[keep])
    out["pauc"] = roc_auc_score(y, s, max_fpr=0.1)
    return out


def _harmonic_score(waves):
    """Per clip: share of the spectrum's power near 1320 Hz (the fixture's anomaly), (N,) float."""
    spectrum = np.abs(np.fft.rfft(waves, axis=1)) ** 2
    freqs = np.fft.rfftfreq(waves.shape[1], 1 / 16000)
    band = (freqs > 1250) & (freqs < 1400)
    return spectrum[:, band].sum(axis=1) / spectrum.sum(axis=1)


def _ground_truth_from_names(folder, test_rows, machine):
    name = f"ground_truth_{machine}_section_00_test.csv"
    for sub, column in (("ground_truth_data", "is_anomaly"), ("ground_truth_domain", "domain")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        values = test_rows[column].map({"source": 0, "target": 1}) if column == "domain" else test_rows[column]
        lines = [f"{f},{int(v)}" for f, v in zip(test_rows.file_name, values)]
        (folder / sub / name).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("channel", ["near", "noise_aware"])
def test_submission_files_give_the_projects_numbers(tmp_path, channel):
    root = make_dcase2026_root(tmp_path)
    index = discover(root)
    train, test = index[index.split == "train"], index[index.split == "test"].reset_index(drop=True)
    train_scores = _harmonic_score(load_batch(train.path, n_samples=16000, channel=channel))
    test_scores = _harmonic_score(load_batch(test.path, n_samples=16000, channel=channel))
    out = tmp_path / "submission"
    written = write_submissions(out, test, test_scores, train, train_scores)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f(m, "00") for m in ("ToyCarEmu", EVAL_MACHINE) for f in (score_file_name, decision_file_name))
    ours = evaluate(test, test_scores).set_index("machine")
    truth_dev = tmp_path / "truth_dev"
    _ground_truth_from_names(truth_dev, test[test.machine == "ToyCarEmu"], "ToyCarEmu")
    for machine, truth_dir in (("ToyCarEmu", truth_dev), (EVAL_MACHINE, root)):
        theirs = _evaluator_from_files(truth_dir, out, machine)
        for metric, value in theirs.items():
            assert ours.loc[machine, metric] == pytest.approx(value, abs=1e-12)
        score_path, decision_path = written[(machine, "00")]
        decisions = _rows(decision_path)
        assert [r[0] for r in decisions] == [r[0] for r in _rows(score_path)]
        assert {r[1] for r in decisions} <= {"0", "1"}
    # the blinded evaluation names are written as they are on disk
    blinded = pd.read_csv(written[(EVAL_MACHINE, "00")][0], header=None)[0]
    assert list(blinded) == [f"section_00_{i:04d}.wav" for i in range(8)]
    assert ours.loc[EVAL_MACHINE, "auc_source"] == 1.0  # the 3rd harmonic is found in both channel settings
