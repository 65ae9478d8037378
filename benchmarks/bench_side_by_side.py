"""Benchmark: the whole run one notebook at a time against notebooks side by side (``--jobs``).

For each ``--jobs`` value it runs ``python -m asd_utils.run.runner --profile P --jobs N`` cold, in a
fresh compendium home of its own (``ASD_HOME``: no data, caches or stand-ins; the notebooks and
reported tables are linked from this checkout), and records the wall time of the synthetic data
and of the notebooks, the CPU time of the whole run (the runner's children), each notebook's own
wall time, and the MD5 of ``summary.csv``. The summaries must be equal: each kernel keeps the
profile's torch thread count, so only the schedule changes. It is a benchmark, not a test.

    python benchmarks/bench_side_by_side.py                        # smoke, --jobs 1 and 2 (about 7 min)
    python benchmarks/bench_side_by_side.py --profile default      # about 55 min on 2 cores

Writes ``benchmarks/results/side_by_side_<profile>.json`` and ``.md`` atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_default_run import children_cpu_seconds

from asd_utils import paths
from asd_utils.storage.atomic import atomic_write_text

LINKED = ("notebooks", "papers", "pyproject.toml")  # what a run reads from the project root
DONE_LINE = re.compile(r"\[\d+/\d+\] (?P<name>\S+)(?: \.\.\.)? done in (?P<seconds>[\d.]+) s")
DATA_LINE = re.compile(r"^data: .* \((?P<seconds>[\d.]+) s\)$", re.MULTILINE)
ALL_LINE = re.compile(r"^all \d+ notebooks done in (?P<seconds>[\d.]+) s$", re.MULTILINE)


def fresh_home(folder: Path) -> Path:
    """An empty compendium home whose notebooks and reported tables are this checkout's."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in LINKED:
        (folder / name).symlink_to(paths.project_root() / name)
    return folder


def run_once(profile: str, jobs: int, home: Path) -> dict:
    """One cold runner invocation; its timings, CPU time and summary checksum."""
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "asd_utils.run.runner", "--profile", profile, "--jobs", str(jobs)],
                          env={**os.environ, "ASD_HOME": str(home)}, capture_output=True, text=True)
    wall = time.perf_counter() - started
    cpu_s = children_cpu_seconds() - cpu_before
    if done.returncode != 0:
        tail = done.stdout[-3000:] + done.stderr[-3000:]
        raise RuntimeError(f"--jobs {jobs} failed (exit {done.returncode}):\n{tail}")
    summary = home / "results" / profile / "summary.csv"
    return {
        "jobs": jobs,
        "wall_s": round(wall, 1),
        "data_s": float(DATA_LINE.search(done.stdout)["seconds"]),
        "notebooks_s": float(ALL_LINE.search(done.stdout)["seconds"]),
        "cpu_s": round(cpu_s, 1),
        "per_notebook_s": {m["name"]: float(m["seconds"]) for m in DONE_LINE.finditer(done.stdout)},
        "summary_md5": hashlib.md5(summary.read_bytes()).hexdigest(),
    }


def to_markdown(result: dict) -> str:
    runs = result["runs"]
    lines = [f"Cold runner, profile `{result['profile']}`, {result['cpus']} CPUs "
             "(synthetic data; not the reports' results).", "",
             "| | " + " | ".join(f"--jobs {r['jobs']}" for r in runs) + " |",
             "|---|" + "---:|" * len(runs)]
    for key, label in (("wall_s", "whole run (s)"), ("data_s", "synthetic data (s)"),
                       ("notebooks_s", "notebooks (s)"), ("cpu_s", "CPU time (s)")):
        lines.append(f"| {label} | " + " | ".join(f"{r[key]:.1f}" for r in runs) + " |")
    for name in runs[0]["per_notebook_s"]:
        lines.append(f"| {name} (s) | " + " | ".join(f"{r['per_notebook_s'].get(name, float('nan')):.1f}"
                                                  for r in runs) + " |")
    lines.append("| summary.csv MD5 | " + " | ".join(f"`{r['summary_md5'][:8]}`" for r in runs) + " |")
    lines += ["", "Summaries identical: " + ("yes" if result["summaries_identical"] else "**no**")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", choices=("smoke", "default"))
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workdir", default=None, help="where the fresh homes go (default: a temporary folder)")
    args = parser.parse_args(argv)
    import tempfile

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_side_by_side_"))
    runs = []
    for jobs in args.jobs:
        runs.append(run_once(args.profile, jobs, fresh_home(workdir / f"jobs{jobs}")))
        print(f"--jobs {jobs}: {runs[-1]['wall_s']:.1f} s wall, {runs[-1]['cpu_s']:.1f} s CPU", flush=True)
    result = {"profile": args.profile, "cpus": os.cpu_count(), "machine": platform.machine(),
              "python": platform.python_version(), "runs": runs,
              "summaries_identical": len({r["summary_md5"] for r in runs}) == 1}
    out = paths.project_root() / "benchmarks" / "results" / f"side_by_side_{args.profile}"
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), to_markdown(result))
    print(to_markdown(result))
    return 0 if result["summaries_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
