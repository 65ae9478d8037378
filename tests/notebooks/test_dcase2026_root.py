"""Every notebook on a tiny two-channel DCASE 2026-style root, in the smoke profile.

The root: the two-channel synthetic generator, two machine types named like 2026 development types
(``bearingEmu``, ``valveEmu``), smoke sizes (16 training and 16 test clips each, 2 and 3.3 s). All
notebooks run in order into one output folder with the default channel ``near`` (the comparison
notebook last, reading the others); then notebook 01 runs again with the noise-aware front end, and
:func:`asd_utils.evaluation.channel_comparison.channel_side_by_side` puts the two runs side by side.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asd_utils.data import discover, use_channel
from asd_utils.evaluation.results import collect_results, note_channel
from asd_utils.run import execute, runner

from .test_notebooks import assert_metrics_match_submissions

NOTEBOOKS = runner.available_notebooks()
pytestmark = [pytest.mark.notebook, pytest.mark.slow]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from asd_utils.synth.two_channel import ensure_two_channel_dataset

    base = tmp_path_factory.mktemp("root2026")
    return ensure_two_channel_dataset("smoke", base / "synth_dcase2026", seed=0, machines=["bearing", "valve"],
                                      names=["bearingEmu", "valveEmu"], workers=1, progress=False)


@pytest.fixture(scope="module")
def out(root, tmp_path_factory):
    """Every notebook once on the root, channel ``near``, side by side (``--jobs 2``, as ``make
    reproduce``); returns the output folder, or fails naming the notebook that failed."""
    folder = tmp_path_factory.mktemp("near")
    args = runner.make_parser().parse_args(["--profile", "smoke", "--data-root", str(root), "--output-dir",
                                            str(folder), "--jobs", "2", "--channel", "near"])
    try:
        runner.run(runner.build_plan(args), log=lambda *parts, **_: None, terminal=False)
    except runner.NotebookFailed as failed:
        pytest.fail(f"a notebook failed on the two-channel root: {failed}")
    return folder


def _run(notebook: Path, out_dir: Path, root: Path, channel: str) -> None:
    params = {"PROFILE": "smoke", "DATA_ROOT": str(root), "OUTPUT_DIR": str(out_dir)}
    with use_channel(channel):
        execute.execute_notebook(notebook, out_dir / "notebooks" / notebook.name, params)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_a_two_channel_root(notebook, out):
    assert (out / "notebooks" / notebook.name).exists()
    tidy = collect_results(out / "results")
    mine = tidy[tidy["notebook"] == notebook.stem]
    assert {note_channel(n) for n in mine["note"]} <= {"near"}  # every result row states the channel


def test_results_match_submissions_and_noise_aware_side_by_side(root, out, tmp_path):
    from asd_utils.evaluation.channel_comparison import channel_side_by_side

    index = discover(root)
    test_index = index[index["split"] == "test"].reset_index(drop=True)
    assert assert_metrics_match_submissions(out / "results", test_index) > 0
    baseline = runner.select_notebooks(NOTEBOOKS, ["01"])[0]
    _run(baseline, tmp_path, root, "noise_aware")
    aware = collect_results(tmp_path / "results")
    assert {note_channel(n) for n in aware["note"]} == {"noise_aware"}
    assert_metrics_match_submissions(tmp_path / "results", test_index)
    table = channel_side_by_side(out / "results", tmp_path / "results", n_resamples=100)
    rows = table[table["notebook"] == baseline.stem]
    assert len(rows) >= 2 and rows["near"].notna().all() and rows["noise_aware"].notna().all()
    assert rows["near ci_low"].notna().all()  # intervals from the submission files
