"""Kernel-side hang watchdog: an IPython extension the runner loads into every kernel it starts.

A kernel that stops answering (a deadlock inside a cell, or an execute request the kernel never
reads) would otherwise leave papermill waiting forever. The runner gives every cell a time limit
(:func:`asd_utils.run.execute.cell_timeout`); this extension makes the kernel say *where* it was when
the limit passes. It arms :func:`faulthandler.dump_traceback_later` whenever a cell starts and again
whenever one finishes, so any stretch of ``ASD_KERNEL_WATCHDOG_S`` seconds without a cell starting or
finishing writes every thread's Python stack to the file ``ASD_KERNEL_WATCHDOG_FILE``. The runner
reads that file when a cell times out and puts it in its message and log.

Loaded by ``--IPKernelApp.extensions=asd_utils.run.kernel_watchdog`` (:data:`asd_utils.run.execute.KERNEL_ARGUMENTS`);
without both environment variables it does nothing.
"""

from __future__ import annotations

import faulthandler
import os

SECONDS_ENV = "ASD_KERNEL_WATCHDOG_S"
FILE_ENV = "ASD_KERNEL_WATCHDOG_FILE"

_state: dict = {}


def _arm(*_args) -> None:
    """(Re)start the countdown: a dump is written only if nothing happens for the whole period."""
    faulthandler.cancel_dump_traceback_later()
    faulthandler.dump_traceback_later(_state["seconds"], repeat=False, file=_state["file"], exit=False)


def load_ipython_extension(ip) -> None:
    """Arm the watchdog around every cell of the shell ``ip`` (IPython's extension hook)."""
    seconds, path = os.environ.get(SECONDS_ENV), os.environ.get(FILE_ENV)
    if not seconds or not path or "file" in _state:
        return
    # faulthandler writes from its own C thread straight to this descriptor: no Python, no zmq
    _state["file"] = open(path, "w", buffering=1)  # noqa: SIM115 - kept open for the kernel's lifetime
    _state["seconds"] = float(seconds)
    ip.events.register("pre_run_cell", _arm)
    ip.events.register("post_run_cell", _arm)
    _arm()


def unload_ipython_extension(ip) -> None:
    """Disarm (IPython's extension hook)."""
    faulthandler.cancel_dump_traceback_later()
    for event in ("pre_run_cell", "post_run_cell"):
        try:
            ip.events.unregister(event, _arm)
        except ValueError:
            pass
