"""The project's metrics against the official evaluator's own numbers, on DCASE 2026-style submissions.

``tests/fixtures/dcase2026_evaluator/`` was made by ``scripts/make_dcase2026_evaluator_golden.py``
(its docstring says how): the project wrote submission files for a tiny hand-made DCASE 2026 root
and a synthetic 2026 root (four machine types, two systems: channel ``near`` and ``noise_aware``),
and the official ``nttcslab/dcase2024_task2_evaluator`` (commit ``b5d17f63``, run unchanged outside
the project; the 2026 task keeps that submission format) scored them against the ground-truth CSVs
stored beside them, writing ``teams_result/<system>_result.csv``.

Here :mod:`asd_utils.evaluation.metrics` recomputes AUC (source), AUC (target), pAUC and the official
score from the same files alone and must give the evaluator's printed numbers (written with full
``repr`` precision; tolerance 1e-12). The joins follow the evaluator's reading of its folders: the
submission names the clips by their real names, ``ground_truth_attributes/`` maps each real name to
the blinded name under which ``ground_truth_data/`` (0 normal, 1 anomaly) and
``ground_truth_domain/`` (0 source, 1 target) hold it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from asd_utils.evaluation.metrics import evaluate, official_score
from asd_utils.evaluation.submission import decision_file_name, read_submission, score_file_name

FIXTURE = Path(__file__).parent / "fixtures" / "dcase2026_evaluator"
SYSTEMS = ("logmel_knn_near", "logmel_knn_noise_aware")
MACHINES = ("ToyCarEmu", "ToyDrone", "bearing", "valve")
COLUMNS = {"auc_source": "AUC (source)", "auc_target": "AUC (target)", "pauc": "pAUC"}


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as stream:
        return [row for row in csv.reader(stream)]


def evaluator_result(system: str) -> tuple[dict[str, dict[str, float]], float]:
    """The evaluator's result CSV: ``({machine: {'AUC (source)': ..., 'AUC (target)': ..., 'pAUC': ...}},
    official score)``, section 00 of each machine type."""
    rows = _rows(FIXTURE / "teams_result" / f"{system}_result.csv")
    per_machine, official = {}, None
    for i, row in enumerate(rows):
        if len(row) == 1 and i + 2 < len(rows) and rows[i + 1][:1] == ["section"]:
            header, values = rows[i + 1], rows[i + 2]
            assert values[0] == "00"
            per_machine[row[0]] = {name: float(values[header.index(name)]) for name in COLUMNS.values()}
        if row[:1] == ["official score"]:
            official = float(row[2])
    assert official is not None
    return per_machine, official


def clips_from_files(system: str) -> pd.DataFrame:
    """One row per test clip of every ground-truth CSV: ``machine, section, file_name, domain,
    is_anomaly, score``, joined from the stored files only (real name -> blinded name -> truth)."""
    frames = []
    for truth_file in sorted((FIXTURE / "ground_truth_data").glob("ground_truth_*_test.csv")):
        _, _, machine, _, section, _ = truth_file.stem.split("_")
        label = {name: int(v) for name, v in _rows(truth_file)}
        domain = {name: int(v) for name, v in _rows(FIXTURE / "ground_truth_domain" / truth_file.name)}
        blinded = {f"{real}.wav": name for name, real in _rows(FIXTURE / "ground_truth_attributes" / truth_file.name)}
        submission = read_submission(FIXTURE / "teams" / "compendium" / system / score_file_name(machine, section))
        names = [blinded.get(n, n) for n in submission["file_name"]]
        assert sorted(names) == sorted(label), f"{machine}: the submission must score every test clip once"
        frames.append(pd.DataFrame({
            "machine": machine, "section": section, "file_name": names,
            "domain": ["target" if domain[n] else "source" for n in names],
            "is_anomaly": [float(label[n]) for n in names],
            "score": submission["score"].to_numpy(),
        }))
    return pd.concat(frames, ignore_index=True)


def test_the_fixture_is_what_the_script_says():
    provenance = json.loads((FIXTURE / "provenance.json").read_text())
    assert provenance["evaluator"] == "nttcslab/dcase2024_task2_evaluator"
    assert provenance["evaluator_commit"] == "b5d17f63769bf4372a5412a7ede1f814c9590047"
    for system in SYSTEMS:
        files = sorted(p.name for p in (FIXTURE / "teams" / "compendium" / system).iterdir())
        assert files == sorted(f(m, "00") for m in MACHINES for f in (score_file_name, decision_file_name))
        assert sorted(evaluator_result(system)[0]) == sorted(MACHINES)
    clips = clips_from_files(SYSTEMS[0])
    assert clips.groupby("machine").size().to_dict() == {"ToyCarEmu": 8, "ToyDrone": 8, "bearing": 16, "valve": 16}
    # the development clips are blinded in a shuffled order, so a join by position would be wrong
    bearing = _rows(FIXTURE / "ground_truth_attributes" / "ground_truth_bearing_section_00_test.csv")
    assert [real for _, real in bearing] != sorted(real for _, real in bearing)


@pytest.mark.parametrize("system", SYSTEMS)
def test_metrics_give_the_official_evaluators_numbers(system):
    """AUC (source), AUC (target), pAUC per machine type and the official score, as printed by the evaluator."""
    clips = clips_from_files(system)
    table = evaluate(clips, clips["score"]).set_index("machine")
    theirs, their_official = evaluator_result(system)
    assert sorted(table.index) == sorted(theirs)
    for machine, values in theirs.items():
        for ours, name in COLUMNS.items():
            assert table.loc[machine, ours] == pytest.approx(values[name], abs=1e-12), (machine, name)
    assert official_score(table) == pytest.approx(their_official, abs=1e-12)


def test_the_golden_numbers_tell_definitions_apart():
    """The fixture can fail: another pAUC limit, AUC (source) over source anomalies only, or an
    arithmetic instead of a harmonic mean would each miss the evaluator's numbers by far more than the
    tolerance (the synthetic types' scores are imperfect, so the definitions disagree there)."""
    clips = clips_from_files("logmel_knn_near")
    theirs, their_official = evaluator_result("logmel_knn_near")
    other_fpr = evaluate(clips, clips["score"], max_fpr=0.2).set_index("machine")
    assert max(abs(other_fpr.loc[m, "pauc"] - theirs[m]["pAUC"]) for m in theirs) > 1e-2
    bearing = clips[clips.machine == "bearing"]
    source = bearing[bearing.domain == "source"]
    source_only = roc_auc_score(source.is_anomaly, source.score)  # source normals vs source anomalies only
    assert abs(source_only - theirs["bearing"]["AUC (source)"]) > 1e-2
    table = evaluate(clips, clips["score"])
    assert abs(float(np.mean(table[list(COLUMNS)].to_numpy())) - their_official) > 1e-3
