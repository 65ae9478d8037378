"""The notebook tier's one shared smoke run (``smoke_run``) and its committed reference.

Every check of the tier (each notebook, the blinded clips, the comparison, the reference, the
rerun) reads the same run: the runner executes all notebooks once per pytest session, side by side
(``--jobs 2``, as ``make reproduce``), in the smoke profile, into a temporary folder.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REFERENCE_SUMMARY = REFERENCE_DIR / "smoke_summary.csv"
REFERENCE_MACHINE = REFERENCE_DIR / "smoke_summary_machine.json"
UPDATE_REFERENCE_ENV = "ASD_UPDATE_REFERENCE"
BLINDED_PER_MACHINE = 2  # test clips per machine type renamed to eval-style names without ground truth
DATA_SEED = 0  # the seed of ``asd_utils.synth.ensure_dataset("smoke")``: the same clips as ``make smoke``


def machine_kind() -> dict:
    """What decides whether two smoke runs must agree to the last bit: processor architecture and
    instruction set torch dispatches to, and the versions of the numerical libraries."""
    import numpy
    import scipy
    import sklearn
    import torch

    return {"machine": platform.machine(), "system": platform.system(),
            "python": ".".join(platform.python_version_tuple()[:2]),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__}


@dataclass
class SmokeRun:
    """One execution of every notebook by the runner in the smoke profile.

    output_dir: the run's ``OUTPUT_DIR`` (``notebooks/``, ``results/``, ``figures/`` below it);
    results_dir: ``output_dir/results`` (tidy CSVs per notebook, ``summary.csv``, ``submissions/``,
    ``comparison/``); data_root: the DCASE-layout root it ran on (the smoke synthetic data, with
    ``blinded`` test clips renamed ``section_00_000<i>.wav``); summary: ``results/summary.csv`` as a
    DataFrame (one row per notebook x system), None when the run recorded nothing; failure: the
    runner's message when a notebook failed (the others may not have run), else None; log: the
    runner's log lines; blinded: DataFrame ``machine, file_name, original`` of the blinded clips.
    """

    output_dir: Path
    results_dir: Path
    data_root: Path
    summary: pd.DataFrame | None
    failure: str | None
    log: list[str]
    blinded: pd.DataFrame
    _notebooks: dict = field(default_factory=dict)

    def executed(self, stem: str) -> Path:
        """The executed copy of notebook ``stem`` (e.g. ``"08_comparison"``); fails the calling test
        with the runner's message when that notebook did not run to its end."""
        path = self.output_dir / "notebooks" / f"{stem}.ipynb"
        if stem not in self._notebooks:
            pytest.fail(f"no notebook {stem!r}; the compendium has {sorted(self._notebooks)}")
        if not path.exists() or (self.failure and stem in self.failure):
            pytest.fail(f"{stem} did not run to its end in the shared smoke run:\n{self.failure}")
        return path

    def test_index(self, *, labelled_only: bool = False) -> pd.DataFrame:
        """The data root's test clips (``asd_utils.data.discover`` rows), blinded ones included
        unless ``labelled_only``."""
        from asd_utils.data import discover

        index = discover(self.data_root)
        index = index[index["split"] == "test"]
        if labelled_only:
            index = index[index["label"].notna()]
        return index.reset_index(drop=True)


def make_blinded_root(root: Path) -> pd.DataFrame:
    """Generate the smoke synthetic data into ``root`` and blind the first
    :data:`BLINDED_PER_MACHINE` test clips of every machine type (eval-style names
    ``section_00_000<i>.wav``, no ground truth). Returns ``machine, file_name, original``."""
    from asd_utils.synth import generate_dataset

    generate_dataset(root, "smoke", seed=DATA_SEED, progress=False)
    (root / "synth_manifest.json").unlink()  # the manifest lists the original names
    rows = []
    for machine_dir in sorted((root / "dev_data" / "raw").iterdir()):
        for i, clip in enumerate(sorted((machine_dir / "test").glob("*.wav"))[:BLINDED_PER_MACHINE]):
            blinded = clip.with_name(f"section_00_{i:04d}.wav")
            clip.rename(blinded)
            rows.append({"machine": machine_dir.name, "file_name": blinded.name, "original": clip.name})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> SmokeRun:
    """Execute every notebook once for the whole session and share the run.

    The runner runs side by side (``--jobs 2``, as ``make reproduce``) in the smoke profile on a
    fresh copy of the smoke synthetic data whose first two test clips per machine type are blinded,
    writing into a temporary ``OUTPUT_DIR``. Caches stay in the compendium's ``cache/smoke/``: they
    are keyed by the data's content and the code (``asd_utils.storage.keys.cache_key``), so a warm
    session reuses only what the current code would compute again.

    Returns a :class:`SmokeRun`: ``.output_dir``, ``.results_dir``, ``.data_root``, ``.summary``,
    ``.executed(stem) -> Path``, ``.test_index()``, ``.blinded``, ``.failure``, ``.log``. A failed
    notebook does not raise here: the tests that read it fail, naming it.
    """
    from asd_utils.run import runner

    base = tmp_path_factory.mktemp("smoke_run")
    root = base / "data"
    blinded = make_blinded_root(root)
    out = base / "out"
    log: list[str] = []
    args = runner.make_parser().parse_args(["--profile", "smoke", "--data-root", str(root), "--output-dir", str(out),
                                            "--jobs", "2"])
    failure = None
    try:
        runner.run(runner.build_plan(args), log=lambda *parts, **_: log.append(" ".join(map(str, parts))),
                   terminal=False)
    except runner.NotebookFailed as failed:
        failure = str(failed)
    summary_path = out / "results" / "summary.csv"
    summary = pd.read_csv(summary_path, keep_default_na=False, na_values=[""]) if summary_path.exists() else None
    return SmokeRun(output_dir=out, results_dir=out / "results", data_root=root, summary=summary, failure=failure,
                    log=log, blinded=blinded, _notebooks={p.stem: p for p in runner.available_notebooks()})


def reference_tolerance() -> float:
    """Absolute tolerance of the comparison with the committed reference: 0 on the machine kind
    that wrote it (the smoke run is deterministic there: same data, seeds and code give the same
    bits, cold or warm, one notebook at a time or side by side); elsewhere 0.03 per AUC, pAUC or
    official score, as float reductions in other kernels may reorder tied or near-tied scores."""
    if not REFERENCE_MACHINE.exists():
        return 0.0
    return 0.0 if json.loads(REFERENCE_MACHINE.read_text()) == machine_kind() else 0.03


def updating_reference() -> bool:
    """``make update-reference`` sets :data:`UPDATE_REFERENCE_ENV`: the reference test then writes
    the reference from this session's run instead of comparing with it."""
    return os.environ.get(UPDATE_REFERENCE_ENV, "") not in ("", "0")
