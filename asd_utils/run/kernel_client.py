"""A Jupyter kernel client for the runner that never sleeps through a message that has arrived.

Hand-written because neither jupyter_client nor nbclient/papermill offers a poll that rechecks the
socket: their channels sleep in one ``poll(timeout)`` that can miss pyzmq's wake-up (below).

jupyter_client's asynchronous channels wait for a message with one ``socket.poll(timeout)``; pyzmq
wakes that poll through the socket's edge-triggered file descriptor. Under load that wake-up can be
missed: the message sits in the socket while the poll sleeps on until its timeout, and only the
poll's last check at the deadline finds it. A run of the compendium met exactly that: a widget cell
of notebook 01 was answered by its kernel in 1.2 s, and papermill received the answer 600.0 s later,
the instant the cell's time limit ran out (two notebooks side by side in smoke). Without a limit
(``paper``, or iopub, which nbclient reads with no timeout) the wait has no end.

:class:`SlicedPollChannel` polls in slices of at most :data:`POLL_SLICE_S`. Each new poll first asks
the socket whether a message is ready, so a missed wake-up costs at most one slice; the caller's
timeout is kept exactly. :class:`RunnerKernelManager` hands papermill (``kernel_manager_class=``) a
client whose five channels are sliced.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Type

__all__ = ["POLL_SLICE_S", "RunnerKernelManager", "SlicedPollChannel", "SlicedPollKernelClient"]

POLL_SLICE_S = 1.0  # longest single poll (s): the most a missed wake-up can delay a message


class SlicedPollChannel(AsyncZMQSocketChannel):
    """An asynchronous ZMQ channel whose :meth:`get_msg` re-polls every :data:`POLL_SLICE_S`."""

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:  # type: ignore[override]
        """The next message; ``Empty`` when none arrived within ``timeout`` seconds (None: wait)."""
        assert self.socket is not None
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        while True:
            remaining = POLL_SLICE_S if deadline is None else min(POLL_SLICE_S, deadline - time.monotonic())
            if await self.socket.poll(max(0, int(remaining * 1000))):
                return await self._recv()
            if deadline is not None and time.monotonic() >= deadline:
                raise Empty


class SlicedPollKernelClient(AsyncKernelClient):
    """:class:`~jupyter_client.asynchronous.AsyncKernelClient` with :class:`SlicedPollChannel`\\ s."""

    shell_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]
    iopub_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]
    stdin_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]
    control_channel_class = Type(SlicedPollChannel)  # type: ignore[assignment]


class RunnerKernelManager(AsyncKernelManager):
    """The kernel manager the runner gives papermill: its clients are :class:`SlicedPollKernelClient`."""

    client_class = DottedObjectName("asd_utils.run.kernel_client.SlicedPollKernelClient")  # type: ignore[assignment]
    # AsyncKernelManager declares the factory with a fixed default, so both traits are set
    client_factory = Type(SlicedPollKernelClient, klass=AsyncKernelClient)  # type: ignore[assignment]
