"""Execute one notebook with papermill: the part of the runner that each notebook's worker process runs.

It imports no torch and none of the package's science (a test checks it): a side-by-side worker
process loads only this module, papermill and the kernel client, so starting a worker costs well
under a second instead of the seconds torch takes to import.

Output fit for a log: when stderr is not a terminal (``make reproduce > log``), no progress bars
are drawn, and the kernels get ``TQDM_MININTERVAL``/``TQDM_MAXINTERVAL`` (:data:`LOG_TQDM_ENV`,
read by tqdm itself), so a text-mode bar in a kernel redraws at most once an hour instead of ten
times a second. Kernels log only CRITICAL messages (:data:`KERNEL_ARGUMENTS`), so ipykernel's
harmless "Kernel is running over TCP without encryption" warning and its "KeyboardInterrupt caught
in kernel" line (the interrupt that shutting a finished kernel down may send) no longer appear in
the log. A failing cell is reported through papermill, not the kernel's log.

A kernel that hangs never stalls a run for ever. Every cell has a time limit
(:func:`cell_timeout`: 10 minutes in ``smoke``, an hour in ``default``, none in ``paper``;
``ASD_CELL_TIMEOUT`` overrides), and the kernels load :mod:`asd_utils.run.kernel_watchdog`, which
writes every thread's stack to ``<executed notebook>.stacks.txt`` shortly before the limit. A
notebook whose cell passes the limit is executed once more from the start (its caches are written
atomically, so that is safe), with a WARNING in the log that quotes the stacks; a second hang
fails the run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import nbformat
import papermill
from nbclient.exceptions import CellTimeoutError
from nbformat.sign import NotebookNotary
from papermill.exceptions import PapermillExecutionError

from asd_utils.run import kernel_watchdog
from asd_utils.run.kernel_client import RunnerKernelManager

# tqdm reads TQDM_<PARAMETER> defaults from the environment when it is imported (tqdm >= 4.66):
# in kernels started for a log, a bar redraws at most once an hour (plus its first and last state)
LOG_TQDM_ENV = {"TQDM_MININTERVAL": "3600", "TQDM_MAXINTERVAL": "3600"}


class NotebookFailed(RuntimeError):
    """A notebook raised while executing; the message names the notebook and the cell."""


# A cell of a notebook in these profiles that runs longer than this is taken for a hung kernel. The
# slowest cells of a cold run take about 2 minutes on 2 cores (smoke: seconds); paper-profile training
# has no bound. ASD_CELL_TIMEOUT (seconds; 0 or "none": no limit) overrides.
CELL_TIMEOUT_S = {"smoke": 600, "default": 3600, "paper": None}
CELL_TIMEOUT_ENV = "ASD_CELL_TIMEOUT"
HANG_RETRIES = 1          # executions of a notebook after its first one hung
WATCHDOG_LEAD_S = 15      # the kernel dumps its stacks this long before the runner gives up on a cell


def cell_timeout(profile: str | None) -> float | None:
    """Seconds one cell may run before its kernel is taken for hung (None: no limit)."""
    raw = os.environ.get(CELL_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return CELL_TIMEOUT_S.get(profile or "", None)
    if raw.strip().lower() in ("0", "none"):
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ValueError(f"{CELL_TIMEOUT_ENV}={raw!r}: expected a number of seconds > 0, or 0/none for no limit")
    return seconds


class KernelHung(RuntimeError):
    """A cell produced no reply within :func:`cell_timeout`; ``stacks`` holds the kernel's dump."""

    def __init__(self, message: str, stacks: str):
        super().__init__(message)
        self.stacks = stacks


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default: stderr) is an interactive terminal (False for a log file/pipe)."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block (kernels started inside inherit
    them), restoring the previous values afterwards."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


# ipykernel (>= 7) logs "Kernel is running over TCP without encryption" at WARNING level for every
# kernel on a localhost TCP port; for a kernel on this machine (messages HMAC-signed) it is harmless
# noise in the log. So is "KeyboardInterrupt caught in kernel", logged at ERROR when the shutdown of a
# finished kernel interrupts it. The runner's kernels therefore log only CRITICAL messages: a failing
# cell reaches the runner through papermill, not through the kernel's log. (IPC sockets would avoid
# the warning too, but a notebook hung once over IPC in a loaded run: TCP is what papermill is tested on.)
# ... and load the hang watchdog (it acts only when the runner sets its environment variables)
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL", "--IPKernelApp.extensions=asd_utils.run.kernel_watchdog"]


def execute_notebook(notebook: Path, output: Path, parameters: dict, kernel: str | None = None, *,
                     terminal: bool | None = None, log=None) -> None:
    """Execute one notebook with papermill; raise :class:`NotebookFailed` naming the cell.

    terminal: whether progress may be drawn for a person (default: stderr is a terminal); when
    False the kernel gets :data:`LOG_TQDM_ENV` and papermill draws no cell progress bar.
    A cell that runs past :func:`cell_timeout` (of ``parameters["PROFILE"]``) is taken for a hung
    kernel: the notebook is executed once more (not under torchrun, whose other ranks would wait),
    with a warning through ``log`` (default: stderr) quoting the kernel's stacks.
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    timeout = cell_timeout(parameters.get("PROFILE"))
    retries = HANG_RETRIES if int(os.environ.get("WORLD_SIZE", "1")) <= 1 else 0
    for attempt in range(retries + 1):
        try:
            _execute_once(notebook, output, parameters, kernel, terminal, timeout)
            return
        except KernelHung as hung:
            if attempt == retries:
                raise NotebookFailed(f"notebook {notebook.name}: {hung}; gave up after {attempt + 1} "
                                     f"execution(s)\n{hung.stacks}") from None
            log(f"  WARNING ({notebook.stem}): {hung}; executing it again from the start\n{hung.stacks}")


def _execute_once(notebook: Path, output: Path, parameters: dict, kernel: str | None, terminal: bool | None,
                  timeout: float | None) -> None:
    """One execution of :func:`execute_notebook`; raises :class:`KernelHung` past ``timeout``."""
    terminal = is_terminal() if terminal is None else bool(terminal)
    output.parent.mkdir(parents=True, exist_ok=True)
    stacks_file = output.with_name(output.stem + ".stacks.txt")
    stacks_file.unlink(missing_ok=True)
    env = dict({} if terminal else LOG_TQDM_ENV)
    if timeout is not None:
        env.update({kernel_watchdog.SECONDS_ENV: str(max(1.0, timeout - WATCHDOG_LEAD_S)),
                    kernel_watchdog.FILE_ENV: str(stacks_file)})
    finished = False
    try:
        with environment(env):
            papermill.execute_notebook(
                str(notebook),
                str(output),
                parameters=parameters,
                kernel_name=kernel,
                cwd=str(notebook.parent),
                progress_bar=terminal,
                log_output=False,
                execution_timeout=None if timeout is None else int(max(1, round(timeout))),
                extra_arguments=list(KERNEL_ARGUMENTS),
                kernel_manager_class=RunnerKernelManager,  # never sleeps through an arrived message
                # every cell has answered and its outputs are in: stop the kernel at once (a graceful
                # shutdown of a kernel that has loaded torch takes about 2 s more, per notebook)
                shutdown_kernel="immediate",
                # the widgets' last state goes into the executed notebook's metadata: a saved run
                # opened later (or rendered into a book) shows each widget as it was drawn
                store_widget_state=True,
            )
        finished = True
        trust_notebook(output)
    except PapermillExecutionError as error:
        first_line = str(error.evalue).splitlines()[0] if error.evalue else ""
        raise NotebookFailed(
            f"notebook {notebook.name} failed in cell {error.cell_index} (execution count {error.exec_count}): "
            f"{error.ename}: {first_line}\n  executed copy with the traceback: {output}"
        ) from None
    except CellTimeoutError as error:
        raise _kernel_hung(str(error).splitlines()[0], timeout, stacks_file) from None
    except AssertionError as error:
        # the request nbclient sends after the last cell (kernel_info) waits under the same limit;
        # nbclient 0.11 reports its timeout with a bare ``assert cell is not None``
        if not _is_nbclient_timeout(error):
            raise
        raise _kernel_hung("no reply to the request after the last cell", timeout, stacks_file) from None
    finally:
        # keep a dump only beside a notebook that did not finish, and never an empty file
        if stacks_file.is_file() and (finished or stacks_file.stat().st_size == 0):
            stacks_file.unlink()


def trust_notebook(path: Path) -> None:
    """Sign an executed notebook as trusted by this user, as ``jupyter trust`` does. JupyterLab shows
    the widgets of a saved run from its stored widget state only in a trusted notebook (widget views
    are not "safe" output); the outputs are this user's own run, so signing them is what trusting
    means."""

    if Path(path).is_file():  # papermill has written it; nothing to sign otherwise
        NotebookNotary().sign(nbformat.read(str(path), as_version=4))


def _is_nbclient_timeout(error: BaseException) -> bool:
    """Whether ``error`` was raised inside nbclient's timeout handler."""

    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and frames[-1].name == "_async_handle_timeout"


def _kernel_hung(where: str, timeout: float | None, stacks_file: Path) -> KernelHung:
    stacks = stacks_file.read_text(errors="replace").strip() if stacks_file.is_file() else ""
    return KernelHung(f"no reply from the kernel within {timeout:.0f} s ({where})",
                      f"  kernel stacks ({stacks_file}):\n{stacks}" if stacks else "  (the kernel wrote no stacks)")


def execute_in_worker(notebook: Path, output: Path, parameters: dict, kernel: str | None
                      ) -> tuple[float, list[str], str | None]:
    """Body of a worker process of the side-by-side runner: execute one notebook (log mode, no
    progress bars). Returns ``(seconds, log messages, failure message or None)``."""
    messages: list[str] = []
    started = time.perf_counter()
    try:
        execute_notebook(notebook, output, parameters, kernel, terminal=False, log=messages.append)
    except NotebookFailed as failed:
        return time.perf_counter() - started, messages, str(failed)
    return time.perf_counter() - started, messages, None
