"""Run the compendium's notebooks end to end with papermill.

    python -m asd_utils.runner --profile default                 # everything, synthetic data
    python -m asd_utils.runner --profile smoke --notebooks 00 01  # a subset
    python -m asd_utils.runner --profile paper --data-root /data/dcase2025t2

Notebooks execute in order into ``outputs/<profile>/`` (never in place). Without ``--data-root``
the profile's synthetic dataset is generated first (once; later runs reuse it). On failure the
run stops and names the notebook and the failing cell. At the end every notebook's results are
collected into ``results/<profile>/summary.csv`` and ``summary.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from asd_utils import paths

NOTEBOOK_DIR_NAME = "notebooks"


class NotebookFailed(RuntimeError):
    """A notebook raised while executing; the message names the notebook and the cell."""


@dataclass
class RunPlan:
    """What one runner invocation does."""

    profile: str
    notebooks: list[Path]
    data_root: str | None
    notebooks_out: Path
    results_dir: Path
    output_dir: str | None
    kernel: str | None
    extra_parameters: dict


def available_notebooks(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in order."""
    folder = folder or paths.project_root() / NOTEBOOK_DIR_NAME
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def select_notebooks(all_notebooks: list[Path], wanted: list[str] | None) -> list[Path]:
    """Pick notebooks by number prefix (``01``) or name (``01_baseline_autoencoder``).

    Raises ``ValueError`` listing the available ones when a selector matches nothing.
    """
    if not wanted:
        return list(all_notebooks)
    chosen = []
    for selector in wanted:
        key = selector.removesuffix(".ipynb")
        matches = [p for p in all_notebooks if p.stem == key or p.stem.split("_", 1)[0] == key]
        if not matches:
            names = ", ".join(p.stem for p in all_notebooks)
            raise ValueError(f"no notebook matches {selector!r}; available: {names}")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def parse_parameter(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (KEY, value) with ints/floats/None/True/False parsed."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    import yaml

    return key.strip(), yaml.safe_load(raw)


def build_plan(args: argparse.Namespace) -> RunPlan:
    profile = paths.check_profile(args.profile)
    notebooks = select_notebooks(available_notebooks(), args.notebooks)
    if args.output_dir:
        base = Path(args.output_dir).expanduser().resolve()
        notebooks_out, results = base / "notebooks", base / "results"
    else:
        notebooks_out, results = paths.outputs_dir(profile), paths.results_dir(profile)
    data_root = str(Path(args.data_root).expanduser().resolve()) if args.data_root else None
    if data_root and not Path(data_root).is_dir():
        raise FileNotFoundError(f"--data-root {data_root} does not exist or is not a folder")
    return RunPlan(
        profile=profile,
        notebooks=notebooks,
        data_root=data_root,
        notebooks_out=notebooks_out,
        results_dir=results,
        output_dir=str(Path(args.output_dir).expanduser().resolve()) if args.output_dir else None,
        kernel=args.kernel,
        extra_parameters=dict(args.param or []),
    )


def execute_notebook(notebook: Path, output: Path, parameters: dict, kernel: str | None = None) -> None:
    """Execute one notebook with papermill; raise :class:`NotebookFailed` naming the cell."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            kernel_name=kernel,
            cwd=str(notebook.parent),
            progress_bar=sys.stderr.isatty(),
            log_output=False,
        )
    except PapermillExecutionError as error:
        first_line = str(error.evalue).splitlines()[0] if error.evalue else ""
        raise NotebookFailed(
            f"notebook {notebook.name} failed in cell {error.cell_index} (execution count {error.exec_count}): "
            f"{error.ename}: {first_line}\n  executed copy with the traceback: {output}"
        ) from None


def collect_summary(results_dir: Path) -> Path | None:
    """Collect every notebook's result CSV into ``summary.csv`` and ``summary.md``."""
    from asd_utils.io_utils import atomic_write_csv, atomic_write_text
    from asd_utils.results import collect_results, summary_table, to_markdown

    tidy = collect_results(results_dir)
    if tidy is None or len(tidy) == 0:
        return None
    summary = summary_table(tidy)
    csv_path = atomic_write_csv(results_dir / "summary.csv", summary)
    atomic_write_text(results_dir / "summary.md", to_markdown(summary) + "\n")
    return csv_path


def run(plan: RunPlan, log=print) -> Path | None:
    """Execute the plan; return the summary CSV path (None when no results were recorded)."""
    if plan.data_root is None:
        from asd_utils.synth import ensure_dataset

        started = time.perf_counter()
        root = ensure_dataset(plan.profile)
        log(f"data: synthetic dataset at {root} ({time.perf_counter() - started:.1f} s)")
    else:
        log(f"data: {plan.data_root}")
    total = len(plan.notebooks)
    run_started = time.perf_counter()
    for position, notebook in enumerate(plan.notebooks, start=1):
        parameters = {"PROFILE": plan.profile, "DATA_ROOT": plan.data_root, "OUTPUT_DIR": plan.output_dir}
        parameters.update(plan.extra_parameters)
        output = plan.notebooks_out / notebook.name
        log(f"[{position}/{total}] {notebook.stem} ...", end="", flush=True)
        started = time.perf_counter()
        try:
            execute_notebook(notebook, output, parameters, plan.kernel)
        except NotebookFailed:
            log(f" FAILED after {time.perf_counter() - started:.1f} s")
            raise
        log(f" done in {time.perf_counter() - started:.1f} s -> {output}")
    summary = collect_summary(plan.results_dir)
    log(f"all {total} notebooks done in {time.perf_counter() - run_started:.1f} s")
    if summary is not None:
        log(f"summary: {summary} and {summary.with_suffix('.md')}")
        log(summary.with_suffix(".md").read_text())
    return summary


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asd_utils.runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", choices=paths.PROFILES)
    parser.add_argument("--data-root", default=None,
                        help="DCASE-layout root (dev_data/raw/<machine>/...); default: generated synthetic data")
    parser.add_argument("--notebooks", nargs="*", default=None, help="subset, by number (01) or name")
    parser.add_argument("--output-dir", default=None,
                        help="put executed notebooks, results and figures under this folder")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    parser.add_argument("--param", action="append", type=parse_parameter, metavar="KEY=VALUE",
                        help="extra notebook parameter, e.g. --param BEATS_CHECKPOINT=/ckpt/BEATs_iter3_plus_AS2M.pt")
    parser.add_argument("--list", action="store_true", help="list the notebooks and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.list:
        for notebook in available_notebooks():
            print(notebook.stem)
        return 0
    try:
        plan = build_plan(args)
        run(plan)
    except (NotebookFailed, ValueError, FileNotFoundError) as error:
        print(f"\nrunner: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
