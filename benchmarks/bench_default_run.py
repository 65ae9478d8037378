"""Regression benchmark of the default run: every system's official score and every notebook's time.

Runs the notebooks through the runner (``asd_utils.run.runner``, profile ``default``) on two data roots:

- ``synthetic``: the embedded synthetic default dataset (what ``make reproduce`` uses);
- ``unseen``: a root whose machine types played no part in choosing the default settings: three
  machine types generated under new names with another generator seed and 10 s clips, 200 source
  + 10 target training clips and 25 test clips per domain and label each (the shape a new user's
  first dataset has). The default settings were chosen on the synthetic default's *training* clips
  only (training / held-out accuracy), never on these clips.

For every root and notebook it records the wall time and the CPU time of the notebook (the kernel
is a child process), and for every system the official score (harmonic mean of AUC-s, AUC-t and
pAUC over machine types and sections) and the lowest per-machine AUC-t. It is a benchmark, not a
test: nothing is asserted.

    python benchmarks/bench_default_run.py                        # all notebooks, both roots
    python benchmarks/bench_default_run.py --notebooks 01 06 --roots synthetic
    python benchmarks/bench_default_run.py --workdir /tmp/bench   # keep outputs elsewhere

Writes ``benchmarks/results/default_run.json`` and ``benchmarks/results/default_run.md`` (the
Markdown tables the README shows) atomically. A cold run trains everything; run it with an empty
``--workdir`` (the default wipes nothing: trained models are cached under the project's
``cache/`` folder, so delete it first for cold timings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from asd_utils import paths
from asd_utils.evaluation.metrics import official_score
from asd_utils.evaluation.results import collect_results
from asd_utils.run import runner
from asd_utils.storage.atomic import atomic_write_json, atomic_write_text

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results" / "default_run.json"
RESULTS_MD = HERE / "results" / "default_run.md"

# the unseen root: three of the generator's sound models under names no code or config knows,
# another generator seed, DCASE-length clips
UNSEEN_PROFILE = "bench_unseen"
UNSEEN_SIZES = {"duration": 10.0, "train_source": 200, "train_target": 10, "test_per_cell": 25,
                "supplemental_clean": 0, "supplemental_noise": 0}
UNSEEN_TYPES = ("fan", "gearbox", "valve")
UNSEEN_NAMES = ("compressor", "pump-b", "conveyor")
UNSEEN_SEED = 2026


def ensure_unseen_root(folder: Path, *, progress: bool = True) -> Path:
    """Generate (once) the unseen-types root into ``folder``; returns it."""
    from asd_utils.synth import PROFILES, Profile, ensure_dataset

    PROFILES.setdefault(UNSEEN_PROFILE, Profile(**UNSEEN_SIZES))
    return ensure_dataset(UNSEEN_PROFILE, folder, UNSEEN_SEED, names=list(UNSEEN_NAMES),
                          machines=list(UNSEEN_TYPES), progress=progress)


def children_cpu_seconds() -> float:
    """User + system CPU seconds of every finished child process of this one (so far)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_root(label: str, data_root: Path | None, notebooks: list[Path], workdir: Path,
             profile: str = "default") -> dict:
    """Run each notebook once (in order) on one root; return timings and per-system scores.

    A notebook that fails is recorded with its error (``"failed"``) and the others still run.
    """
    out_dir = workdir / label
    timings = []
    for notebook in notebooks:
        plan = runner.build_plan(argparse.Namespace(
            profile=profile, notebooks=[notebook.stem], data_root=str(data_root) if data_root else None,
            output_dir=str(out_dir), kernel=None, param=None, jobs=1))  # one at a time: per-notebook times
        cpu0, wall0 = children_cpu_seconds(), time.perf_counter()
        failed = None
        try:
            runner.run(plan, log=lambda *a, **k: None)
        except runner.NotebookFailed as error:
            failed = str(error).splitlines()[0]
        timings.append({"notebook": notebook.stem, "wall_s": round(time.perf_counter() - wall0, 1),
                        "cpu_s": round(children_cpu_seconds() - cpu0, 1), **({"failed": failed} if failed else {})})
        print(f"  {label}: {notebook.stem} {timings[-1]['wall_s']:.1f} s wall, {timings[-1]['cpu_s']:.1f} s CPU"
              + (f" FAILED: {failed}" if failed else ""), flush=True)
    return {"data_root": "synthetic default" if data_root is None else f"{label} ({data_root.name})",
            "notebooks": timings, "total_wall_s": round(sum(t["wall_s"] for t in timings), 1),
            "total_cpu_s": round(sum(t["cpu_s"] for t in timings), 1), "systems": _systems(out_dir / "results")}


def _systems(results_dir: Path) -> list[dict]:
    """Per system of a results folder: official score, lowest per-machine AUC-t, machine count, notes."""
    tidy = collect_results(results_dir)
    systems = []
    for (nb, system), rows in tidy.groupby(["notebook", "system"], sort=False):
        notes = sorted({str(n) for n in rows["note"] if str(n) not in ("", "nan")})
        systems.append({"notebook": nb, "system": system, "official_score": round(official_score(rows), 4),
                        "min_auc_target": round(float(np.min(rows["auc_target"])), 4),
                        "machines": int(rows["machine"].nunique()), "note": "; ".join(notes)})
    return systems


def merge_reports(previous: dict, current: dict, workdir: Path) -> dict:
    """``current`` plus what only ``previous`` has: roots not run now, and per root the timings of
    notebooks not run now (kept in notebook order). Scores are re-read from ``workdir/<root>/results``,
    which holds every notebook's results of both runs; each timing keeps its own measurement."""
    merged = dict(current, roots=dict(previous.get("roots", {})))
    for label, now in current["roots"].items():
        before = merged["roots"].get(label)
        if before is not None:
            ran = {t["notebook"] for t in now["notebooks"]}
            timings = sorted([t for t in before["notebooks"] if t["notebook"] not in ran] + now["notebooks"],
                             key=lambda t: t["notebook"])
            now = dict(now, notebooks=timings, systems=_systems(workdir / label / "results"),
                       total_wall_s=round(sum(t["wall_s"] for t in timings), 1),
                       total_cpu_s=round(sum(t["cpu_s"] for t in timings), 1))
        merged["roots"][label] = now
    merged["merged_from"] = sorted({previous.get("date", "?"), current["date"]})
    return merged


def markdown(report: dict) -> str:
    """The README tables: scores per system (one column per root) and wall time per notebook."""
    roots = list(report["roots"])
    scores = {}
    for root in roots:
        for row in report["roots"][root]["systems"]:
            key = (row["notebook"], row["system"])
            scores.setdefault(key, {})[root] = f"{row['official_score']:.3f} ({row['min_auc_target']:.2f})"
    table = pd.DataFrame([{"notebook": nb, "system": s, **vals} for (nb, s), vals in scores.items()])
    lines = ["Official score per system (lowest per-machine AUC-t in brackets); synthetic data, "
             "stand-in backbones where the note of the results says so.", "",
             "| notebook | system | " + " | ".join(roots) + " |", "|---|---|" + "---:|" * len(roots)]
    for _, row in table.iterrows():
        cells = [str(row.get(r, "")) if isinstance(row.get(r), str) else "" for r in roots]
        lines.append(f"| {row['notebook']} | {row['system']} | " + " | ".join(cells) + " |")
    lines += ["", "Wall time per notebook (s), CPU time in brackets:", "",
              "| notebook | " + " | ".join(roots) + " |", "|---|" + "---:|" * len(roots)]
    names = [t["notebook"] for t in report["roots"][roots[0]]["notebooks"]]
    for name in names:
        cells = []
        for root in roots:
            t = next((t for t in report["roots"][root]["notebooks"] if t["notebook"] == name), None)
            cells.append("" if t is None else "failed" if t.get("failed") else f"{t['wall_s']:.0f} ({t['cpu_s']:.0f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = [f"{report['roots'][r]['total_wall_s']:.0f} ({report['roots'][r]['total_cpu_s']:.0f})" for r in roots]
    lines.append("| **all** | " + " | ".join(totals) + " |")
    meta = report["machine"]
    lines += ["", f"Measured {report['date']} on {meta['cpu_count']} CPU cores ({meta['processor']}), "
              f"load average {meta['load_average_1min_at_start']} at the start."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", default=None, help="subset by number or name (default: all)")
    parser.add_argument("--roots", nargs="*", default=["synthetic", "unseen"], choices=["synthetic", "unseen"])
    parser.add_argument("--workdir", type=Path, default=None,
                        help="executed notebooks and results go here (default: outputs/bench_default_run)")
    parser.add_argument("--unseen-root", type=Path, default=None,
                        help="folder of the unseen-types root (default: data/bench_unseen; generated once)")
    parser.add_argument("--profile", default="default", choices=["smoke", "default"],
                        help="runner profile (smoke: to check this script quickly)")
    parser.add_argument("--output", type=Path, default=RESULTS_JSON)
    parser.add_argument("--merge", action="store_true",
                        help="keep the timings of notebooks (and roots) not run this time from an existing "
                             "--output (same --workdir: the scores are re-read from its results folders)")
    args = parser.parse_args(argv)
    notebooks = runner.select_notebooks(runner.available_notebooks(), args.notebooks)
    workdir = (args.workdir or paths.project_root() / "outputs" / "bench_default_run").resolve()
    report = {"benchmark": "default_run", "profile": args.profile,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "load_average_1min_at_start": round(os.getloadavg()[0], 2)},
              "unseen_root": {"types": list(UNSEEN_TYPES), "names": list(UNSEEN_NAMES), "seed": UNSEEN_SEED,
                              **UNSEEN_SIZES},
              "roots": {}}
    for label in args.roots:
        data_root = None
        if label == "unseen":
            data_root = ensure_unseen_root((args.unseen_root or paths.data_dir() / "bench_unseen").resolve())
        print(f"== {label}", flush=True)
        report["roots"][label] = run_root(label, data_root, notebooks, workdir, args.profile)
    report["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    if args.merge and args.output.exists():
        report = merge_reports(json.loads(args.output.read_text()), report, workdir)
    atomic_write_json(args.output, report)
    text = markdown(report)
    atomic_write_text(args.output.with_suffix(".md"), text)
    print(text)
    return report


if __name__ == "__main__":
    main()
