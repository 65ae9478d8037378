"""Make the DCASE 2026 evaluator golden fixture by running the official evaluator (not part of the project).

The official 2026 evaluator (``nttcslab/dcase2026_task2_evaluator``) could not be read here; the
2026 task keeps the 2025 submission format, which is the 2024 one, so the fixture is made with the
official **2024** evaluator, run unchanged outside the project. How it was made (once; the output
is committed, the official code is not):

    git clone https://github.com/nttcslab/dcase2024_task2_evaluator path/to/evaluator
    git -C path/to/evaluator checkout b5d17f63769bf4372a5412a7ede1f814c9590047
    python scripts/make_dcase2026_evaluator_golden.py --official-dir path/to/evaluator \
        --evaluator-commit b5d17f63769bf4372a5412a7ede1f814c9590047

(here the checkout was ``git --git-dir=<mirror> archive b5d17f6 | tar -x -C <tmp>``: the tree of that
commit, the head of the repository's default branch, "Merge pull request #1 from nttcslab/v1.0.1"),
run with the project's own Python environment (Python 3.11, the versions in ``provenance.json``).

What the script does, in a temporary folder:

1. **Two tiny DCASE 2026 roots**: the hand-made root of ``tests/dcase2026_fixture.py`` (real
   naming: ``ToyCarEmu`` development clips, ``ToyDrone`` evaluation clips blinded as
   ``section_00_0000.wav`` ... with its ground-truth CSVs) and the synthetic 2026 root of
   ``python -m asd_utils.synth OUT --profile smoke --layout dcase2026 --types bearing,valve``
   (seed 0; 16 test clips per type).
2. **The project's submission files** (:func:`asd_utils.evaluation.submission.write_submissions`)
   of two deterministic systems of the project's own code, one per channel setting (``near`` and
   ``noise_aware``): per clip the mean over frames of the baseline log-mel
   (:func:`asd_utils.features.logmel.log_mel`, 128 bands, the whole clip at its own length), scored
   per machine type and section by :class:`asd_utils.scoring.knn.KNNScorer` (k = 1, Euclidean,
   one bank per domain) fitted on the training clips; the training scores that set the decision
   threshold are leave-one-out (:func:`asd_utils.scoring.normalise.fit_scores_from_training`).
3. **The evaluator's folders**: ``teams/compendium/<system>/`` with the submission files;
   ``ground_truth_data/``, ``ground_truth_domain/`` and ``ground_truth_attributes/``
   (``ground_truth_<type>_section_00_test.csv``; the evaluator needs all three for every type).
   Every type is evaluated as a blinded evaluation type: the labelled development clips get blinded
   names ``section_00_<nnnn>.wav`` in a seeded random order and the attributes CSV maps each
   blinded name to the clip's real name (as the official 2024 ground truth does), so the
   evaluator must map the submission's real names to the blinded ones to join them with the
   truth; the already blinded ``ToyDrone`` clips map to themselves.
4. **The official script**, ``python dcase2024_task2_evaluator.py --teams_root_dir teams
   --dir_depth 2 --result_dir teams_result`` (its defaults otherwise: ``MAX_FPR`` 0.1), in a copy of
   ``--official-dir`` whose 2024 ground-truth folders are replaced by the ones above.

Output, ``tests/fixtures/dcase2026_evaluator/`` (small CSV files only): ``teams/compendium/<system>/``
(the submission files), ``ground_truth_{data,domain,attributes}/``, ``teams_result/<system>_result.csv``
(the evaluator's result CSVs, as written) and ``provenance.json`` (evaluator commit, command,
library versions). ``tests/test_official_evaluator_2026.py`` recomputes every AUC (source),
AUC (target), pAUC and the official score from those files with :mod:`asd_utils.evaluation.metrics`.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "dcase2026_evaluator"
TEAM = "compendium"
SYSTEMS = {"logmel_knn_near": "near", "logmel_knn_noise_aware": "noise_aware"}  # system -> channel setting
EVALUATOR = "dcase2024_task2_evaluator.py"
TRUTH_DIRS = ("ground_truth_data", "ground_truth_domain", "ground_truth_attributes")
BLIND_SEED = 2026
BLINDED = re.compile(r"^section_\d{2}_\d{4}\.wav$")


def build_roots(work: Path) -> list[Path]:
    """The hand-made 2026 root and the synthetic smoke 2026 root (bearing, valve), written under ``work``."""
    sys.path.insert(0, str(REPO / "tests"))
    from dcase2026_fixture import make_dcase2026_root

    from asd_utils.synth.two_channel import ensure_two_channel_dataset

    hand = make_dcase2026_root(work / "hand")
    synth = ensure_two_channel_dataset("smoke", work / "synth" / "dcase2026t2", 0, machines=["bearing", "valve"],
                                       workers=1, progress=False)
    return [hand, Path(synth)]


def clip_features(paths, channel: str) -> np.ndarray:
    """(N, 128) float64: per clip, the mean over frames of the baseline log-mel of the whole clip
    (its own length) under channel setting ``channel``."""
    from asd_utils.data import load_audio
    from asd_utils.features.logmel import log_mel

    return np.stack([log_mel(load_audio(p, channel=channel)).mean(dim=-1).double().numpy() for p in paths])


def system_scores(index: pd.DataFrame, channel: str):
    """``(test_index, test_scores, train_index, train_scores)`` of the log-mel kNN system of one root."""
    from asd_utils.methods.pipeline import split_index
    from asd_utils.scoring import KNNScorer, fit_scores_from_training

    train, test = split_index(index)
    train_scores, test_scores = np.zeros(len(train)), np.zeros(len(test))
    train_x, test_x = clip_features(train["path"], channel), clip_features(test["path"], channel)
    for (machine, section), rows in train.groupby(["machine", "section"], sort=True):
        tr = np.flatnonzero(((train.machine == machine) & (train.section == section)).to_numpy())
        te = np.flatnonzero(((test.machine == machine) & (test.section == section)).to_numpy())
        scorer = KNNScorer(k=1, metric="euclidean", separate_domains=True)
        domains = rows["domain"].to_numpy()
        train_scores[tr] = fit_scores_from_training(scorer, train_x[tr], domains)
        test_scores[te] = scorer.fit(train_x[tr], domains).score(test_x[te])
    return test, test_scores, train, train_scores


def write_truth(test: pd.DataFrame, truth_root: Path) -> None:
    """The evaluator's three ground-truth CSVs of every machine type/section of ``test`` (labelled rows)."""
    rng = np.random.default_rng(BLIND_SEED)
    for (machine, section), rows in test.groupby(["machine", "section"], sort=True):
        rows = rows.reset_index(drop=True)
        names = rows["file_name"].tolist()
        if all(BLINDED.match(n) for n in names):  # blinded on disk: the correspondence is the identity
            blind = names
        else:
            order = rng.permutation(len(rows))
            blind = [""] * len(rows)
            for position, i in enumerate(order):
                blind[i] = f"section_{section}_{position:04d}.wav"
        name = f"ground_truth_{machine}_section_{section}_test.csv"
        lines = {
            "ground_truth_data": [f"{b},{int(a)}" for b, a in zip(blind, rows["is_anomaly"])],
            "ground_truth_domain": [f"{b},{int(d == 'target')}" for b, d in zip(blind, rows["domain"])],
            "ground_truth_attributes": [f"{b},{Path(n).stem}" for b, n in zip(blind, names)],
        }
        by_name = np.argsort(blind, kind="stable")  # rows sorted by blinded name, as the official CSVs
        for folder, text in lines.items():
            (truth_root / folder).mkdir(parents=True, exist_ok=True)
            (truth_root / folder / name).write_text("\n".join(text[i] for i in by_name) + "\n")


def run_evaluator(official_dir: Path, work: Path, truth_root: Path, teams: Path, python: str) -> Path:
    """Run the official script in a copy of ``official_dir`` with our truth and teams; returns its result dir."""
    copy = work / "evaluator"
    shutil.copytree(official_dir, copy, ignore=shutil.ignore_patterns(".git"))
    for folder in TRUTH_DIRS:
        shutil.rmtree(copy / folder, ignore_errors=True)
        shutil.copytree(truth_root / folder, copy / folder)
    shutil.rmtree(copy / "ground_truth_attributes_all", ignore_errors=True)
    shutil.rmtree(copy / "teams", ignore_errors=True)
    shutil.copytree(teams, copy / "teams")
    command = [python, EVALUATOR, "--teams_root_dir", "teams", "--dir_depth", "2", "--result_dir", "teams_result"]
    done = subprocess.run(command, cwd=copy, capture_output=True, text=True)
    (work / "evaluator_log.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"the official evaluator failed ({done.returncode}):\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return copy / "teams_result"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-dir", type=Path, required=True,
                        help="a checkout of nttcslab/dcase2024_task2_evaluator (never modified)")
    parser.add_argument("--evaluator-commit", required=True, help="the commit of that checkout (recorded)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the evaluator")
    args = parser.parse_args(argv)
    if not (args.official_dir / EVALUATOR).is_file():
        parser.error(f"{args.official_dir} holds no {EVALUATOR}")

    from asd_utils.data import discover
    from asd_utils.evaluation.submission import write_submissions

    with tempfile.TemporaryDirectory(prefix="dcase2026_golden_") as tmp:
        work = Path(tmp)
        indexes = [discover(root) for root in build_roots(work)]
        teams = work / "teams"
        tests = []
        for system, channel in SYSTEMS.items():
            for index in indexes:
                test, test_scores, train, train_scores = system_scores(index, channel)
                write_submissions(teams / TEAM / system, test, test_scores, train, train_scores)
                if system == next(iter(SYSTEMS)):
                    tests.append(test)
        write_truth(pd.concat(tests, ignore_index=True), work / "truth")
        results = run_evaluator(args.official_dir, work, work / "truth", teams, args.python)

        shutil.rmtree(args.out, ignore_errors=True)
        args.out.mkdir(parents=True)
        shutil.copytree(teams, args.out / "teams")
        for folder in TRUTH_DIRS:
            shutil.copytree(work / "truth" / folder, args.out / folder)
        (args.out / "teams_result").mkdir()
        for system in SYSTEMS:
            shutil.copy2(results / f"{system}_result.csv", args.out / "teams_result")

    versions = {}
    for module in ("numpy", "scipy", "sklearn", "pandas"):
        versions[module] = __import__(module).__version__
    provenance = {
        "evaluator": "nttcslab/dcase2024_task2_evaluator",
        "evaluator_commit": args.evaluator_commit,
        "command": "python dcase2024_task2_evaluator.py --teams_root_dir teams --dir_depth 2 --result_dir teams_result",
        "max_fpr": "the evaluator's MAX_FPR (0.1), unchanged",
        "roots": ["tests/dcase2026_fixture.py make_dcase2026_root",
                  "python -m asd_utils.synth OUT --profile smoke --layout dcase2026 --types bearing,valve (seed 0)"],
        "systems": {s: f"log-mel mean per clip, KNNScorer k=1 euclidean per domain, channel {c}"
                    for s, c in SYSTEMS.items()},
        "python": platform.python_version(),
        "libraries": versions,
    }
    (args.out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"golden fixture written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
