"""The channel setting: what one waveform a two-channel (DCASE 2026) clip becomes.

Every loader of the package (:func:`asd_utils.data.load_audio`, ``load_batch`` and all that call
them) turns a clip of a 2026 root (:mod:`asd_utils.data.layout`) into one waveform chosen by one
run-wide setting, so no notebook and no method needs its own code for 2026 data:

- ``near`` (default): channel 0, the microphone near the machine; what the official 2026 baseline
  reads ("the signal in the left channel is equivalent to the previous mono");
- ``far``: channel 1;
- ``mean``: the average of both;
- ``noise_aware``: the near channel with the far channel's noise estimate subtracted
  (:func:`asd_utils.signal.noise_aware.denoise_near`).

The setting lives in the environment variable :data:`CHANNEL_ENV` (``ASD_CHANNEL``), so the kernels
``python -m asd_utils.run.runner --channel ...`` starts inherit it, and each result note states it
(:func:`channel_note`). Clips of a 2020-2025 root are mono and ignore it. Caches stay correct:
``asd_utils.paths.cache_dir`` keeps another channel's caches in their own folder.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from asd_utils.data.errors import DataError
from asd_utils.data.layout import is_two_channel_layout
from asd_utils.signal.noise_aware import denoise_near

__all__ = ["CHANNELS", "CHANNEL_ENV", "DEFAULT_CHANNEL", "check_channel", "current_channel", "use_channel",
           "from_two_channels", "channel_note"]

CHANNELS = ("near", "far", "mean", "noise_aware")
CHANNEL_ENV = "ASD_CHANNEL"
DEFAULT_CHANNEL = "near"


def check_channel(channel: str) -> str:
    """Return ``channel`` if it is one of :data:`CHANNELS`, else raise ``ValueError`` listing them."""
    if channel not in CHANNELS:
        raise ValueError(f"channel {channel!r}: expected one of {', '.join(CHANNELS)}")
    return channel


def current_channel() -> str:
    """The run's channel: ``$ASD_CHANNEL`` when set (and valid), else ``near``."""
    raw = os.environ.get(CHANNEL_ENV, "").strip()
    if not raw:
        return DEFAULT_CHANNEL
    try:
        return check_channel(raw)
    except ValueError as error:
        raise ValueError(f"{CHANNEL_ENV}={raw!r}: {error}") from None


@contextlib.contextmanager
def use_channel(channel: str) -> Iterator[str]:
    """Set the run's channel for the block (processes and kernels started inside inherit it)."""
    check_channel(channel)
    before = os.environ.get(CHANNEL_ENV)
    os.environ[CHANNEL_ENV] = channel
    try:
        yield channel
    finally:
        if before is None:
            os.environ.pop(CHANNEL_ENV, None)
        else:
            os.environ[CHANNEL_ENV] = before


def from_two_channels(data: np.ndarray, channel: str | None = None, *, name: str = "clip") -> np.ndarray:
    """One waveform from a two-channel clip.

    Args:
        data: ``(samples, 2)`` float array, column 0 near, column 1 far (soundfile's layout).
        channel: one of :data:`CHANNELS`; None: :func:`current_channel`.
        name: how to name the clip in an error (its path).

    Returns:
        ``(samples,)`` float32.
    """
    channel = check_channel(channel) if channel is not None else current_channel()
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != 2:
        raise DataError(f"{name}: audio of shape {data.shape}; expected (samples, 2) with channel 0 near and "
                        "channel 1 far (DCASE 2026 Task 2 layout)")
    if channel == "near":
        wave = data[:, 0]
    elif channel == "far":
        wave = data[:, 1]
    elif channel == "mean":
        wave = data.mean(axis=1)
    else:

        wave = denoise_near(data[:, 0], data[:, 1])
    return np.ascontiguousarray(wave, dtype=np.float32)


def channel_note(paths, channel: str | None = None) -> str:
    """The words a result note gets for the clips ``paths`` (an iterable of clip paths): e.g.
    ``"channel near of two-channel DCASE 2026 clips"`` when one of them lies in a 2026 root,
    ``""`` otherwise (mono clips have no channel to state)."""

    channel = check_channel(channel) if channel is not None else current_channel()
    for path in paths:
        if is_two_channel_layout(path):
            return f"channel {channel} of two-channel DCASE 2026 clips"
    return ""
