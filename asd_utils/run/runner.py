"""Run the compendium's notebooks end to end with papermill: the plan, the side-by-side scheduler,
the summary and the command line.

    python -m asd_utils.run --profile default                        # everything, synthetic data
    python -m asd_utils.run --profile smoke --notebooks 00 01         # a subset
    python -m asd_utils.run --profile paper --data-root /data/dcase2025t2
    python -m asd_utils.run --profile smoke --data-root data/dcase2026t2 --channel noise_aware

(``python -m asd_utils.run.runner`` is the same command.) Notebooks execute in order into
``outputs/<profile>/`` (never in place). Without ``--data-root`` the profile's synthetic dataset is
generated first (once; later runs reuse it). On failure the run stops and names the notebook and
the failing cell. At the end every notebook's results are collected into
``results/<profile>/summary.csv`` and ``summary.md``. How one notebook is executed (papermill, log
mode, cell time limits, hung kernels) is :mod:`asd_utils.run.execute`.

When stderr is not a terminal (``make reproduce > log``) the runner prints one line per phase
(data, each notebook, summary) and no progress bars. Lines a notebook flags with
``context.loud_warning`` are repeated in the log after its line.

Notebooks side by side: ``--jobs N`` (``make reproduce`` passes ``JOBS``, 2 by default) executes up
to N notebooks at once, each in its own process and kernel, dispatched in number order. A notebook
starts only after the notebooks it reads from have finished: those its metadata names under
``compendium.reads_results_of`` (notebook numbers) and, for the comparison notebook, every other
one. Each kernel keeps its profile's torch thread count, so every number is the same as in a run
one notebook at a time; only the wall time changes. Shared caches are keyed and written atomically,
and pretrained stand-ins are built under a file lock, so two notebooks never build the same thing
twice. After a failure no further notebook starts; those already running finish, then the run stops.

Why the package's own imports sit inside the functions that use them: a worker process is started
with ``spawn``, which imports the main module again before it runs anything, and under
``python -m asd_utils.run.runner`` that module is this one. Imported at the top, torch, the
synthetic generator and the results code (4-8 s on 2 busy cores) would be loaded once more for every
notebook, outside its own time; that made a cold default run 35 s slower. A test checks that
importing this module loads no torch.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from asd_utils import paths
from asd_utils.run.execute import NotebookFailed, environment, execute_in_worker, execute_notebook, is_terminal

NOTEBOOK_DIR_NAME = "notebooks"
COMPARISON_SUFFIX = "_comparison"  # reads every other notebook's results: waits for them

# Kernels side by side share the cores. OpenMP threads that spin while waiting (libgomp's default)
# then burn the cycles the other kernel needs: two smoke runs side by side took 2.3x the CPU time of
# one after the other. Passive waiting changes no number, only who gets the core.
SIDE_BY_SIDE_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


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
    jobs: int = 1
    channel: str = "near"  # what two-channel DCASE 2026 clips give (asd_utils.data.channels)


def available_notebooks(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in order of their numbers (the comparison is
    numbered last, so it also sorts last)."""
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


def notebook_number(notebook: Path) -> str:
    """The number prefix of ``NN_name.ipynb`` (``"01"``)."""
    return notebook.stem.split("_", 1)[0]


def notebook_prerequisites(notebook: Path, plan_notebooks: list[Path]) -> list[Path]:
    """The notebooks of ``plan_notebooks`` that must finish before ``notebook`` starts.

    A comparison notebook (name ending in :data:`COMPARISON_SUFFIX`) waits for every other one;
    any other notebook for those whose numbers its metadata lists under
    ``compendium.reads_results_of`` (notebooks outside the plan are not waited for).
    """
    others = [p for p in plan_notebooks if p != notebook]
    if notebook.stem.endswith(COMPARISON_SUFFIX):
        return [p for p in others if not p.stem.endswith(COMPARISON_SUFFIX)]
    metadata = json.loads(notebook.read_text()).get("metadata", {})
    wanted = metadata.get("compendium", {}).get("reads_results_of", [])
    if not isinstance(wanted, list) or not all(isinstance(n, str) for n in wanted):
        raise ValueError(f"{notebook}: metadata compendium.reads_results_of must be a list of notebook "
                         f"numbers such as [\"01\"], got {wanted!r}")
    return [p for p in others if notebook_number(p) in wanted]


def parse_jobs(text: str) -> int:
    """``--jobs`` value: a whole number >= 1."""
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"--jobs {text!r}: expected a whole number of notebooks >= 1")
    return jobs


def parse_parameter(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (KEY, value) with ints/floats/None/True/False parsed."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)

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
        jobs=args.jobs,
        channel=getattr(args, "channel", "near"),
    )


def notebook_warnings(executed: Path) -> list[str]:
    """Messages a notebook flagged with ``context.loud_warning`` (stderr lines starting with
    :data:`~asd_utils.notebook.context.WARNING_PREFIX`), in order, from an executed notebook file."""
    from asd_utils.notebook.context import WARNING_PREFIX  # lazy: see the module docstring

    try:
        nb = json.loads(Path(executed).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    found = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out.get("text", []))
                found += [line[len(WARNING_PREFIX):].strip() for line in text.splitlines()
                          if line.startswith(WARNING_PREFIX)]
    return found


def collect_summary(results_dir: Path) -> Path | None:
    """Collect every notebook's result CSV into ``summary.csv`` and ``summary.md``."""
    from asd_utils.evaluation.results import (  # lazy: see the module docstring
        bootstrap_intervals,
        collect_results,
        summary_table,
        to_markdown,
    )
    from asd_utils.storage.atomic import atomic_write_csv, atomic_write_text  # lazy: see the module docstring

    tidy = collect_results(results_dir)
    if tidy is None or len(tidy) == 0:
        return None
    # ci_low / ci_high: 95 % bootstrap interval of the official score from the per-clip submission files
    summary = summary_table(tidy, intervals=bootstrap_intervals(results_dir, tidy))
    csv_path = atomic_write_csv(results_dir / "summary.csv", summary)
    atomic_write_text(results_dir / "summary.md", to_markdown(summary) + "\n")
    return csv_path


def _log_warnings(log, notebook: Path, executed: Path) -> None:
    for message in notebook_warnings(executed):
        log(f"  WARNING ({notebook.stem}): {message}")


def distributed_plan(plan: RunPlan) -> tuple[RunPlan, int]:
    """Under torchrun: join a gloo group (barriers between notebooks) and return the plan for this rank.

    Rank 0 keeps the plan; rank ``k > 0`` executes the same notebooks (its kernels take part in
    DDP training and sharded extraction) but writes its executed notebooks, results and figures
    into the scratch folder ``<notebooks_out>/rank<k>/``. Returns ``(plan, kernel_port_base)``:
    the kernels of notebook ``i`` rendezvous on ``kernel_port_base + i`` (a fresh port per
    notebook, so no kernel meets the store of an earlier notebook's kernel). Without torchrun,
    ``(plan, 0)``.
    """

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return plan, 0
    from asd_utils.training import distributed as dist_utils  # lazy: see the module docstring

    dist_utils.init_distributed(backend="gloo")
    base_port = int(os.environ["MASTER_PORT"])
    rank = dist_utils.rank()
    if rank == 0:
        return plan, base_port
    scratch = plan.notebooks_out / f"rank{rank}"
    return RunPlan(profile=plan.profile, notebooks=plan.notebooks, data_root=plan.data_root,
                   notebooks_out=scratch, results_dir=scratch / "results", output_dir=str(scratch),
                   kernel=plan.kernel, extra_parameters=plan.extra_parameters, channel=plan.channel), base_port


def run(plan: RunPlan, log=print, *, terminal: bool | None = None) -> Path | None:
    """Execute the plan; return the summary CSV path (None when no results were recorded).

    terminal: draw progress bars (default: when stderr is a terminal); otherwise one line per
    phase, fit for a log file. Under ``torchrun`` see :func:`distributed_plan`: only rank 0 logs
    and writes the summary.
    """

    from asd_utils import synth  # lazy: see the module docstring
    from asd_utils.data.channels import use_channel  # lazy: see the module docstring
    from asd_utils.training import distributed as dist_utils  # lazy: see the module docstring

    plan, kernel_port_base = distributed_plan(plan)
    if not dist_utils.is_main_process():
        def log(*args, **kwargs):  # noqa: ARG001 - rank > 0 is silent
            return None
    terminal = is_terminal() if terminal is None else bool(terminal)
    if plan.data_root is None:

        started = time.perf_counter()
        with dist_utils.main_process_first():
            root = synth.ensure_dataset(plan.profile, progress=terminal and dist_utils.is_main_process())
        log(f"data: synthetic dataset at {root} ({time.perf_counter() - started:.1f} s)")
    else:
        log(f"data: {plan.data_root}")
    parameters = {"PROFILE": plan.profile, "DATA_ROOT": plan.data_root, "OUTPUT_DIR": plan.output_dir}
    parameters.update(plan.extra_parameters)
    run_started = time.perf_counter()
    if plan.jobs > 1 and kernel_port_base:
        log(f"--jobs {plan.jobs} is ignored under torchrun: every rank executes one notebook at a time")

    with use_channel(plan.channel):  # kernels inherit ASD_CHANNEL
        if plan.jobs > 1 and not kernel_port_base:
            _run_side_by_side(plan, parameters, log)
        else:
            _run_one_at_a_time(plan, parameters, log, terminal, kernel_port_base)
    if not dist_utils.is_main_process():
        return None
    summary = collect_summary(plan.results_dir)
    log(f"all {len(plan.notebooks)} notebooks done in {time.perf_counter() - run_started:.1f} s")
    if summary is not None:
        log(f"summary: {summary} and {summary.with_suffix('.md')}")
        log(summary.with_suffix(".md").read_text())
    return summary


def _run_one_at_a_time(plan: RunPlan, parameters: dict, log, terminal: bool, kernel_port_base: int) -> None:
    """Execute the plan's notebooks in order, one after the other, in this process."""
    from asd_utils.training import distributed as dist_utils  # lazy: see the module docstring

    total = len(plan.notebooks)
    for position, notebook in enumerate(plan.notebooks, start=1):
        output = plan.notebooks_out / notebook.name
        log(f"[{position}/{total}] {notebook.stem} ...", end="", flush=True)
        started = time.perf_counter()
        # the kernels form their own group: rank 0's kernel hosts the store (not torchrun's agent)
        kernel_env = ({"MASTER_PORT": str(kernel_port_base + position), "TORCHELASTIC_USE_AGENT_STORE": "False"}
                      if kernel_port_base else {})
        try:
            with environment(kernel_env):
                execute_notebook(notebook, output, parameters, plan.kernel, terminal=terminal, log=log)
        except NotebookFailed:
            log(f" FAILED after {time.perf_counter() - started:.1f} s")
            _log_warnings(log, notebook, output)
            raise
        log(f" done in {time.perf_counter() - started:.1f} s -> {output}")
        _log_warnings(log, notebook, output)
        dist_utils.barrier()  # every rank's kernel has finished this notebook


def _run_side_by_side(plan: RunPlan, parameters: dict, log) -> None:
    """Execute up to ``plan.jobs`` notebooks at once, each in a fresh worker process.

    Notebooks start in plan order as soon as a worker is free and their
    :func:`notebook_prerequisites` have finished; the log gets a line when each starts and ends.
    After a failure nothing more starts; the running notebooks finish and :class:`NotebookFailed`
    lists every failure.
    """

    total = len(plan.notebooks)
    position = {notebook: index for index, notebook in enumerate(plan.notebooks, start=1)}
    needs = {notebook: set(notebook_prerequisites(notebook, plan.notebooks)) for notebook in plan.notebooks}
    waiting, finished, running, failures = list(plan.notebooks), set(), {}, []
    # spawn: a worker must not inherit this process's threads or zmq state; one task per worker
    context = multiprocessing.get_context("spawn")
    kernel_env = {k: v for k, v in SIDE_BY_SIDE_ENV.items() if k not in os.environ}  # the user's setting wins
    pool = futures.ProcessPoolExecutor(max_workers=plan.jobs, mp_context=context, max_tasks_per_child=1)
    with environment(kernel_env), pool:
        while waiting or running:
            ready = [notebook for notebook in waiting if needs[notebook] <= finished] if not failures else []
            for notebook in ready[: plan.jobs - len(running)]:
                log(f"[{position[notebook]}/{total}] {notebook.stem} started", flush=True)
                output = plan.notebooks_out / notebook.name
                running[pool.submit(execute_in_worker, notebook, output, parameters, plan.kernel)] = notebook
                waiting.remove(notebook)
            if not running:
                if failures:
                    break
                names = ", ".join(f"{n.stem} (after {', '.join(sorted(p.stem for p in needs[n]))})" for n in waiting)
                raise ValueError(f"notebooks that wait for each other can never start: {names}")
            done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: position[running[f]]):
                notebook = running.pop(future)
                output = plan.notebooks_out / notebook.name
                try:
                    seconds, messages, failure = future.result()
                except Exception as error:  # noqa: BLE001 - the worker process itself died
                    seconds, messages = float("nan"), []
                    failure = f"notebook {notebook.name}: its worker failed: {error!r}"
                for message in messages:
                    log(message)
                if failure is None:
                    finished.add(notebook)
                    log(f"[{position[notebook]}/{total}] {notebook.stem} done in {seconds:.1f} s -> {output}",
                        flush=True)
                else:
                    failures.append(failure)
                    log(f"[{position[notebook]}/{total}] {notebook.stem} FAILED after {seconds:.1f} s", flush=True)
                _log_warnings(log, notebook, output)
    if failures:
        if waiting:
            log(f"not started after the failure: {', '.join(notebook.stem for notebook in waiting)}")
        raise NotebookFailed("\n".join(failures))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asd_utils.run.runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", choices=paths.PROFILES)
    parser.add_argument("--data-root", default=None,
                        help="DCASE-layout root (dev_data/raw/<machine>/...); default: generated synthetic data")
    parser.add_argument("--notebooks", nargs="*", default=None, help="subset, by number (01) or name")
    parser.add_argument("--output-dir", default=None,
                        help="put executed notebooks, results and figures under this folder")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    parser.add_argument("--param", action="append", type=parse_parameter, metavar="KEY=VALUE",
                        help="extra notebook parameter, e.g. --param BEATS_CHECKPOINT=/ckpt/BEATs_iter3_plus_AS2M.pt")
    parser.add_argument("--jobs", type=parse_jobs, default=1,
                        help="notebooks executed at once, each in its own kernel (default 1; numbers are "
                             "the same either way, only the wall time changes)")
    parser.add_argument("--channel", default="near", choices=["near", "far", "mean", "noise_aware"],
                        help="what a two-channel DCASE 2026 clip gives every notebook: the near or far "
                             "microphone, their mean, or the near one with the far one's noise subtracted "
                             "(default near; mono 2020-2025 data ignore it)")
    parser.add_argument("--synth-variant", default=None, choices=["envelope", "realistic"],
                        help="which synthetic world the generated data is (asd_utils.synth.VARIANTS; default "
                             "$ASD_SYNTH_VARIANT or realistic); ignored with --data-root")
    parser.add_argument("--list", action="store_true", help="list the notebooks and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.list:
        for notebook in available_notebooks():
            print(notebook.stem)
        return 0
    if args.synth_variant:  # the runner's own data step and every kernel it starts read it
        from asd_utils.synth.generate import VARIANT_ENV  # lazy: see the module docstring

        os.environ[VARIANT_ENV] = args.synth_variant
    try:
        plan = build_plan(args)
        run(plan)
    except (NotebookFailed, ValueError, FileNotFoundError) as error:
        print(f"\nrunner: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
