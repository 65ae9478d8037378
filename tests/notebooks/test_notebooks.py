"""Tier 2: every notebook runs end to end under papermill in the smoke profile.

Outputs go to a temporary folder (never in place); the smoke synthetic dataset is generated once
into ``data/synth_smoke`` and reused. One extra run points notebook 01 at a DCASE-layout root of
machine types the code has never seen (the first-shot condition).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from asd_utils import runner

NOTEBOOKS = runner.available_notebooks()
pytestmark = pytest.mark.notebook


def _run(notebook: Path, out_dir: Path, **parameters) -> Path:
    executed = out_dir / "notebooks" / notebook.name
    params = {"PROFILE": "smoke", "DATA_ROOT": None, "OUTPUT_DIR": str(out_dir)}
    params.update(parameters)
    runner.execute_notebook(notebook, executed, params)
    return executed


def _submission_folder(results_dir: Path, notebook: str, system: str) -> Path:
    from asd_utils.submission import submission_folder_name

    return results_dir / "submissions" / notebook / submission_folder_name(system)


def assert_metrics_match_submissions(results_dir: Path, test_index: pd.DataFrame) -> int:
    """Every recorded result row (notebook x system x machine x section, ``asd_utils.results``) is
    recomputed from that system's submission file and the clips' ground truth (``metrics.evaluate``
    on the file's scores): the recorded AUCs and pAUC must be the ones the submitted scores give.
    Returns the number of rows checked."""
    from asd_utils import metrics
    from asd_utils.results import collect_results

    tidy = collect_results(results_dir)
    for row in tidy.itertuples(index=False):
        notebook, system, machine, section = row.notebook, row.system, row.machine, str(row.section)
        path = _submission_folder(results_dir, notebook, system) / f"anomaly_score_{machine}_section_{section}_test.csv"
        assert path.exists(), f"{notebook}: {system} recorded {machine} section {section} but wrote no {path.name}"
        submitted = pd.read_csv(path, header=None, names=["file_name", "score"])
        clips = test_index[(test_index["machine"] == machine) & (test_index["section"] == section)]
        assert sorted(submitted["file_name"]) == sorted(clips["file_name"]), f"{path}: not the section's test clips"
        scores = clips["file_name"].map(dict(zip(submitted["file_name"], submitted["score"]))).to_numpy()
        again = metrics.evaluate(clips, scores).iloc[0]
        for metric in ("auc_source", "auc_target", "pauc"):
            assert getattr(row, metric) == pytest.approx(again[metric], abs=1e-9), (
                f"{notebook} {system} {machine}/{section}: recorded {metric} {getattr(row, metric)} but its "
                f"submitted scores give {again[metric]}")
    return len(tidy)


def _smoke_test_index() -> pd.DataFrame:
    from asd_utils.data import discover
    from asd_utils.synth import ensure_dataset

    index = discover(ensure_dataset("smoke", progress=False))
    return index[index["split"] == "test"].reset_index(drop=True)


def _cell_errors(executed: Path) -> list[str]:
    nb = json.loads(executed.read_text())
    return [o.get("ename", "") for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]


READS_OTHERS = "07_comparison"  # trains nothing: compares what the other notebooks recorded


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(notebook, tmp_path):
    if notebook.stem == READS_OTHERS:  # give it something to compare: the baseline's results
        _run(runner.select_notebooks(NOTEBOOKS, ["01"])[0], tmp_path)
    executed = _run(notebook, tmp_path)
    assert executed.exists() and not _cell_errors(executed)
    results = list((tmp_path / "results").glob("*.csv"))
    if notebook.stem == READS_OTHERS:
        leaderboard = pd.read_csv(tmp_path / "results" / "comparison" / "leaderboard.csv")
        assert {"AE-MSE", "AE-MAHALA"} <= set(leaderboard["system"])
    elif notebook.stem != "00_dataset_tour":
        assert results, f"{notebook.stem} recorded no results"
        # the recorded metrics are those of the submitted scores, for every system, machine and section
        checked = assert_metrics_match_submissions(tmp_path / "results", _smoke_test_index())
        assert checked >= len(_smoke_test_index()["machine"].unique())
    assert list((tmp_path / "figures").rglob("*.png")), "no figures written"


def test_baseline_runs_on_machine_types_never_seen(tmp_path):
    from asd_utils.synth import generate_dataset

    names = ["Pump", "Compressor", "Conveyor", "Drill", "Press", "Blower", "Mixer"]
    root = tmp_path / "unseen"
    generate_dataset(root, "smoke", seed=7, names=names)
    _run(runner.select_notebooks(NOTEBOOKS, ["01"])[0], tmp_path / "out", DATA_ROOT=str(root))
    tidy = pd.read_csv(tmp_path / "out" / "results" / "01_baseline_autoencoder.csv")
    assert sorted(tidy["machine"].unique()) == sorted(names)


def test_blinded_test_clips_get_submissions_and_stay_out_of_the_metrics(tmp_path):
    """Evaluation-style data: two test clips per machine renamed to blinded names without ground
    truth. Every notebook must still run, score them, and write them into its submission files."""
    from asd_utils.synth import generate_dataset

    root = tmp_path / "blind"
    generate_dataset(root, "smoke", seed=11, progress=False)
    (root / "synth_manifest.json").unlink()
    for machine_dir in sorted((root / "dev_data" / "raw").iterdir()):
        for i, clip in enumerate(sorted((machine_dir / "test").glob("*.wav"))[:2]):
            clip.rename(clip.with_name(f"section_00_{i:04d}.wav"))
    out = tmp_path / "out"
    assert runner.main(["--profile", "smoke", "--data-root", str(root), "--output-dir", str(out)]) == 0
    for notebook in [n for n in NOTEBOOKS[1:] if n.stem != READS_OTHERS]:
        files = list((out / "results" / "submissions" / notebook.stem).rglob("anomaly_score_*_test.csv"))
        assert files, notebook.stem
        for path in files:
            names = [line.split(",")[0] for line in path.read_text().splitlines()]
            assert "section_00_0000.wav" in names and "section_00_0001.wav" in names, path
    tidy = pd.read_csv(out / "results" / "summary.csv")
    assert tidy[["auc_source", "auc_target", "pauc"]].notna().all().all()
