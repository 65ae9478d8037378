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


def _cell_errors(executed: Path) -> list[str]:
    nb = json.loads(executed.read_text())
    return [o.get("ename", "") for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(notebook, tmp_path):
    executed = _run(notebook, tmp_path)
    assert executed.exists() and not _cell_errors(executed)
    results = list((tmp_path / "results").glob("*.csv"))
    if notebook.stem != "00_dataset_tour":
        assert results, f"{notebook.stem} recorded no results"
        tidy = pd.concat(pd.read_csv(p) for p in results)
        assert tidy[["auc_source", "auc_target", "pauc"]].stack().between(0, 1).all()
        submissions = list((tmp_path / "results" / "submissions").rglob("anomaly_score_*_section_*_test.csv"))
        assert submissions, "no submission files written"
    assert list((tmp_path / "figures").rglob("*.png")), "no figures written"


def test_baseline_runs_on_machine_types_never_seen(tmp_path):
    from asd_utils.synth import generate_dataset

    names = ["Pump", "Compressor", "Conveyor", "Drill", "Press", "Blower", "Mixer"]
    root = tmp_path / "unseen"
    generate_dataset(root, "smoke", seed=7, names=names)
    _run(runner.select_notebooks(NOTEBOOKS, ["01"])[0], tmp_path / "out", DATA_ROOT=str(root))
    tidy = pd.read_csv(tmp_path / "out" / "results" / "01_baseline_autoencoder.csv")
    assert sorted(tidy["machine"].unique()) == sorted(names)
