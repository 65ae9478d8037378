"""Tier 2: every notebook in the smoke profile, checked on one shared run (``smoke_run``,
``tests/shared_smoke_run.py``) against its own submission files and against the committed
reference ``tests/reference/smoke_summary.csv``.

A notebook passes when it runs to its end, records only metrics its submitted scores give, scores
every test clip (blinded ones included) with scores that vary, and reproduces the reference AUCs,
pAUC and official score of each of its systems (exactly on the machine kind that wrote the
reference). So a scorer whose sign flipped, or one that went constant, fails the tier.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_smoke_run import REFERENCE_MACHINE, REFERENCE_SUMMARY, machine_kind, reference_tolerance, updating_reference

from asd_utils.notebook.context import WARNING_PREFIX
from asd_utils.run import execute, runner

NOTEBOOKS = runner.available_notebooks()
READS_OTHERS = "08_comparison"  # trains nothing: compares what the other notebooks recorded
TOUR = "00_dataset_tour"  # records no system
METRIC_COLUMNS = ["auc_source", "auc_target", "pauc", "official_score"]
pytestmark = pytest.mark.notebook


def _submission_folder(results_dir: Path, notebook: str, system: str) -> Path:
    from asd_utils.evaluation.submission import submission_folder_name

    return results_dir / "submissions" / notebook / submission_folder_name(system)


def _cell_errors(executed: Path) -> list[str]:
    nb = json.loads(executed.read_text())
    return [f"{o.get('ename', '')}: {o.get('evalue', '')}" for c in nb["cells"] for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


def assert_metrics_match_submissions(results_dir: Path, test_index: pd.DataFrame) -> int:
    """Every recorded result row (notebook x system x machine x section, ``asd_utils.evaluation.results``) is
    recomputed from that system's submission file and the clips' ground truth (``metrics.evaluate``
    on the file's scores): the recorded AUCs and pAUC must be the ones the submitted scores give.
    ``test_index`` holds the labelled test clips; blinded clips in a file are left out.
    Returns the number of rows checked."""
    from asd_utils.evaluation import metrics
    from asd_utils.evaluation.results import collect_results

    tidy = collect_results(results_dir)
    for row in tidy.itertuples(index=False):
        notebook, system, machine, section = row.notebook, row.system, row.machine, str(row.section)
        path = _submission_folder(results_dir, notebook, system) / f"anomaly_score_{machine}_section_{section}_test.csv"
        assert path.exists(), f"{notebook}: {system} recorded {machine} section {section} but wrote no {path.name}"
        submitted = pd.read_csv(path, header=None, names=["file_name", "score"])
        clips = test_index[(test_index["machine"] == machine) & (test_index["section"] == section)]
        assert set(clips["file_name"]) <= set(submitted["file_name"]), f"{path}: a labelled test clip is missing"
        scores = clips["file_name"].map(dict(zip(submitted["file_name"], submitted["score"]))).to_numpy()
        again = metrics.evaluate(clips, scores).iloc[0]
        for metric in ("auc_source", "auc_target", "pauc"):
            assert getattr(row, metric) == pytest.approx(again[metric], abs=1e-9), (
                f"{notebook} {system} {machine}/{section}: recorded {metric} {getattr(row, metric)} but its "
                f"submitted scores give {again[metric]}")
    return len(tidy)


# -- each notebook ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stem", [p.stem for p in NOTEBOOKS])
def test_notebook_runs_to_its_end_and_draws_its_figures(smoke_run, stem):
    executed = smoke_run.executed(stem)
    assert not _cell_errors(executed), f"{stem}: {_cell_errors(executed)}"
    assert list((smoke_run.output_dir / "figures" / stem).rglob("*.png")), f"{stem} wrote no figure"
    if stem not in (TOUR, READS_OTHERS):
        tidy = pd.read_csv(smoke_run.results_dir / f"{stem}.csv")
        machines = set(smoke_run.test_index()["machine"])
        for system, rows in tidy.groupby("system"):
            assert set(rows["machine"]) == machines, f"{stem} {system}: results for {sorted(set(rows['machine']))}"


def test_recorded_metrics_are_those_of_the_submitted_scores(smoke_run):
    for stem in [p.stem for p in NOTEBOOKS]:
        smoke_run.executed(stem)  # fails naming a notebook that did not run
    checked = assert_metrics_match_submissions(smoke_run.results_dir, smoke_run.test_index(labelled_only=True))
    assert checked == int(smoke_run.summary["n_rows"].sum())


def test_every_system_scores_vary_within_each_section(smoke_run):
    """A constant scorer (or one that lost its input) gives one score to every clip of a section."""
    files = sorted((smoke_run.results_dir / "submissions").rglob("anomaly_score_*_test.csv"))
    assert len(files) >= len(smoke_run.summary) * len(smoke_run.blinded["machine"].unique())
    constant = [str(p.relative_to(smoke_run.results_dir)) for p in files
                if np.ptp(pd.read_csv(p, header=None)[1].to_numpy(dtype=np.float64)) == 0.0]
    assert not constant, f"constant scores in {constant}"


def test_blinded_test_clips_get_submissions_and_stay_out_of_the_metrics(smoke_run):
    """Evaluation-style clips (renamed, no ground truth) are scored into every submission file of
    their machine type, and every recorded metric is finite (the labelled clips only)."""
    for notebook in [p.stem for p in NOTEBOOKS if p.stem not in (TOUR, READS_OTHERS)]:
        files = list((smoke_run.results_dir / "submissions" / notebook).rglob("anomaly_score_*_test.csv"))
        assert files, notebook
        for path in files:
            names = set(pd.read_csv(path, header=None)[0])
            machine = path.name[len("anomaly_score_"):-len("_section_00_test.csv")]
            expected = set(smoke_run.blinded.loc[smoke_run.blinded["machine"] == machine, "file_name"])
            assert expected and expected <= names, path
    assert smoke_run.summary[["auc_source", "auc_target", "pauc"]].notna().all().all()


def test_comparison_ranks_every_recorded_system(smoke_run):
    smoke_run.executed(READS_OTHERS)
    leaderboard = pd.read_csv(smoke_run.results_dir / "comparison" / "leaderboard.csv")
    recorded = set(zip(smoke_run.summary["notebook"], smoke_run.summary["system"]))
    assert set(zip(leaderboard["notebook"], leaderboard["system"])) == recorded
    # ranked by official score, best first; equal scores share a rank
    assert leaderboard["official_score"].is_monotonic_decreasing
    better = (leaderboard["official_score"].to_numpy()[None, :] > leaderboard["official_score"].to_numpy()[:, None])
    np.testing.assert_array_equal(leaderboard["rank"], 1 + better.sum(axis=1))
    joined = leaderboard.merge(smoke_run.summary, on=["notebook", "system"], suffixes=("", "_summary"))
    np.testing.assert_array_equal(joined["official_score"], joined["official_score_summary"])


# -- the committed reference -----------------------------------------------------------------------
def test_the_smoke_root_is_dcase_2025_shaped_and_no_notebook_warns(smoke_run):
    """The shared run exercises what real roots have: test clips of several lengths within every
    machine type, one kind of supplemental clip per type (both kinds in the root), so notebook 04
    mixes clean sound with other types' noise; and no notebook printed an unread warning."""
    import soundfile as sf

    from asd_utils.data import discover

    index = discover(smoke_run.data_root)
    test = index[index["split"] == "test"]
    lengths = test.assign(frames=[sf.info(p).frames for p in test["path"]]).groupby("machine")["frames"].nunique()
    assert (lengths >= 2).all(), f"test clips of one length only: {lengths[lengths < 2].index.tolist()}"
    supplemental = index[index["split"] == "supplemental"]
    assert (supplemental.groupby("machine")["supplemental_kind"].nunique() == 1).all()
    assert set(supplemental["supplemental_kind"]) == {"clean", "noise"}
    notes = pd.read_csv(smoke_run.results_dir / "04_nivic_seresnet_adacos_pseudo_labels.csv")["note"]
    assert not notes.str.contains("0 simulated clips").any(), "notebook 04 mixed no supplemental clip"
    warnings = [line for line in smoke_run.log if WARNING_PREFIX in line]
    assert not warnings, f"warnings nobody reads: {warnings}"


def test_every_system_reproduces_the_reference(smoke_run):
    """Each notebook x system's AUC (source), AUC (target), pAUC and official score equal the
    committed reference (``make update-reference`` rewrites it, deliberately). Tolerance:
    :func:`conftest.reference_tolerance` (0 on the machine kind that wrote it)."""
    for stem in [p.stem for p in NOTEBOOKS]:
        smoke_run.executed(stem)
    summary = smoke_run.summary
    if updating_reference():
        from asd_utils.storage.atomic import atomic_write_csv, atomic_write_json

        atomic_write_csv(REFERENCE_SUMMARY, summary)
        atomic_write_json(REFERENCE_MACHINE, machine_kind())
        return
    assert REFERENCE_SUMMARY.exists(), f"no reference {REFERENCE_SUMMARY}: run make update-reference"
    reference = pd.read_csv(REFERENCE_SUMMARY, keep_default_na=False, na_values=[""])
    key = ["notebook", "system"]
    missing = set(map(tuple, reference[key].to_numpy())) - set(map(tuple, summary[key].to_numpy()))
    extra = set(map(tuple, summary[key].to_numpy())) - set(map(tuple, reference[key].to_numpy()))
    assert not missing and not extra, f"systems missing from the run: {sorted(missing)}; new: {sorted(extra)}"
    tolerance = reference_tolerance()
    joined = reference.merge(summary, on=key, suffixes=("_reference", ""))
    wrong = []
    for column in METRIC_COLUMNS:
        off = ~np.isclose(joined[column], joined[f"{column}_reference"], rtol=0.0, atol=tolerance)
        wrong += [f"{r.notebook} / {r.system}: {column} {getattr(r, column):.6f}, reference "
                  f"{getattr(r, column + '_reference'):.6f}" for r in joined[off].itertuples()]
    assert (joined["n_rows"] == joined["n_rows_reference"]).all()
    assert not wrong, f"{len(wrong)} numbers differ from {REFERENCE_SUMMARY.name} (tolerance {tolerance}):\n" + \
        "\n".join(wrong)


# -- reruns ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_copied_root_reruns_warm_with_the_same_numbers(smoke_run, tmp_path):
    """The data copied to another folder (new paths, new modification times): notebook 01 reruns
    from its caches (no new cache entry: nothing retrained) and records the same numbers."""
    from asd_utils import paths

    copy = Path(shutil.copytree(smoke_run.data_root, tmp_path / "moved" / "data"))
    cache = paths.cache_dir("smoke", "01_baseline_autoencoder", create=False)
    before = sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file())
    out = tmp_path / "out"
    assert runner.main(["--profile", "smoke", "--notebooks", "01", "--data-root", str(copy),
                        "--output-dir", str(out)]) == 0
    after = sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file())
    assert after == before, f"the rerun wrote new cache entries: {sorted(set(after) - set(before))}"
    first = pd.read_csv(smoke_run.results_dir / "01_baseline_autoencoder.csv")
    pd.testing.assert_frame_equal(pd.read_csv(out / "results" / "01_baseline_autoencoder.csv"), first)


@pytest.mark.slow
def test_baseline_runs_on_machine_types_never_seen(tmp_path):
    """The first-shot condition: a DCASE-layout root of machine types the code has never seen."""
    from asd_utils.synth import generate_dataset

    names = ["Pump", "Compressor", "Conveyor", "Drill", "Press", "Blower", "Mixer"]
    root = tmp_path / "unseen"
    generate_dataset(root, "smoke", seed=7, names=names, progress=False)
    execute.execute_notebook(runner.select_notebooks(NOTEBOOKS, ["01"])[0],
                            tmp_path / "out" / "notebooks" / "01_baseline_autoencoder.ipynb",
                            {"PROFILE": "smoke", "DATA_ROOT": str(root), "OUTPUT_DIR": str(tmp_path / "out")})
    tidy = pd.read_csv(tmp_path / "out" / "results" / "01_baseline_autoencoder.csv")
    assert sorted(tidy["machine"].unique()) == sorted(names)
