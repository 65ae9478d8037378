"""Which DCASE layout a clip belongs to: the mono 2020-2025 layouts or the two-channel 2026 one.

DCASE 2026 Task 2 clips are two-channel WAVs, channel 0 the microphone near the machine, channel
1 the far one (official baseline ``nttcslab/dcase2023_task2_baseline_ae`` v5, README "Dataset
audio format"; its loader keeps ``y[0]`` when ``--mono False``). The file names and folders are
those of 2025, so the layout cannot be told from a clip's own name. A clip
``.../<machine>/<split>/<clip>.wav`` is in a 2026 root when the folder holding its machine folder,
or one of the two folders above that,

- has a name containing ``dcase2026`` (any case), as the official baseline's
  ``data/dcase2026t2/dev_data/raw/<machine>/...`` does, or
- holds the marker file :data:`LAYOUT_MARKER` (the synthetic generator writes one; put one at the
  top of a 2026 copy kept under another name).

Only those three levels are looked at, so a compendium cloned under a folder that happens to be
called ``dcase2026`` does not turn its mono synthetic data into a 2026 root.

Everywhere else a stereo file stays an error (:func:`asd_utils.data.load_audio`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

__all__ = ["LAYOUT_MARKER", "CHANNEL_ROLES", "YEAR_TOKEN", "is_two_channel_layout", "two_channel_root",
           "write_layout_marker"]

LAYOUT_MARKER = "dcase2026_two_channel.txt"
YEAR_TOKEN = "dcase2026"
CHANNEL_ROLES = ("near", "far")  # channel 0, channel 1 of a 2026 clip

_MARKER_TEXT = (
    "DCASE 2026 Task 2 layout: every WAV below this folder is two-channel, "
    "channel 0 = near microphone, channel 1 = far microphone.\n"
)


LEVELS_ABOVE_MACHINE = 3  # <root>/dev_data/raw/<machine>: raw, dev_data and the root are looked at


@functools.lru_cache(maxsize=4096)
def _root_of_machine_folder(machine_folder: str) -> str | None:
    parents = Path(machine_folder).parents
    for candidate in list(parents)[:LEVELS_ABOVE_MACHINE]:
        if YEAR_TOKEN in candidate.name.lower() or (candidate / LAYOUT_MARKER).is_file():
            return str(candidate)
    return None


def two_channel_root(clip: str | os.PathLike) -> Path | None:
    """The folder that puts ``clip`` (``.../<machine>/<split>/<name>.wav``) in a DCASE 2026
    two-channel root, or None. Answers are cached per machine folder and process."""
    machine_folder = Path(clip).expanduser().absolute().parent.parent
    found = _root_of_machine_folder(str(machine_folder))
    return Path(found) if found is not None else None


def is_two_channel_layout(clip: str | os.PathLike) -> bool:
    """Whether ``clip`` lies in a DCASE 2026 two-channel root (see the module docstring)."""
    return two_channel_root(clip) is not None


def write_layout_marker(root: str | os.PathLike) -> Path:
    """Write :data:`LAYOUT_MARKER` into ``root`` (which must exist) and return its path."""
    marker = Path(root) / LAYOUT_MARKER
    marker.write_text(_MARKER_TEXT)
    _root_of_machine_folder.cache_clear()
    return marker
