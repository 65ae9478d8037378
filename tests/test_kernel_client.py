"""The runner's kernel client: a message that is ready is never slept through."""

import asyncio
import time
from queue import Empty

import pytest

from asd_utils.run import kernel_client


class _MissedWakeUpSocket:
    """A socket whose first ``missed`` polls sleep their whole timeout although a message is ready
    (what a missed edge-triggered wake-up looks like), then answer at once."""

    def __init__(self, missed, has_message=True):
        self.missed, self.has_message, self.polls = missed, has_message, []

    async def poll(self, timeout_ms=None):
        self.polls.append(timeout_ms)
        if self.has_message and len(self.polls) > self.missed:
            return 1
        await asyncio.sleep((timeout_ms if timeout_ms is not None else 3600_000) / 1000)
        return 0


def _channel(socket, monkeypatch):
    channel = kernel_client.SlicedPollChannel.__new__(kernel_client.SlicedPollChannel)
    channel.socket = socket

    async def recv():
        return {"msg_type": "execute_reply"}

    monkeypatch.setattr(channel, "_recv", recv)
    return channel


@pytest.mark.parametrize("timeout", [30.0, None])
def test_a_missed_wake_up_costs_one_slice_not_the_timeout(monkeypatch, timeout):
    monkeypatch.setattr(kernel_client, "POLL_SLICE_S", 0.2)
    socket = _MissedWakeUpSocket(missed=1)
    message = asyncio.run(_channel(socket, monkeypatch).get_msg(timeout=timeout))
    assert message == {"msg_type": "execute_reply"}
    # one slice slept through, the next poll answered: what it cost is counted in polls, not seconds
    assert socket.polls == [200, 200]


def test_the_callers_timeout_is_kept_and_ends_in_empty(monkeypatch):
    monkeypatch.setattr(kernel_client, "POLL_SLICE_S", 0.2)
    socket = _MissedWakeUpSocket(missed=0, has_message=False)
    started = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(_channel(socket, monkeypatch).get_msg(timeout=0.5))
    # never before the caller's deadline (a load-independent bound), and never polling past it
    assert time.monotonic() - started >= 0.5
    assert socket.polls[:2] == [200, 200] and all(0 <= ms <= 200 for ms in socket.polls)
    assert sum(socket.polls) <= 500
    with pytest.raises(Empty):  # timeout 0: one immediate poll
        asyncio.run(_channel(_MissedWakeUpSocket(0, has_message=False), monkeypatch).get_msg(timeout=0))


def test_the_runner_kernel_manager_makes_sliced_clients():
    manager = kernel_client.RunnerKernelManager()
    client = manager.client()
    assert isinstance(client, kernel_client.SlicedPollKernelClient)
    for name in ("shell", "iopub", "stdin", "control"):
        assert getattr(client, f"{name}_channel_class") is kernel_client.SlicedPollChannel
