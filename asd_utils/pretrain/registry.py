"""What the compendium can pretrain, what a stand-in folder holds, and the pretraining code's version.

Light on purpose: :mod:`asd_utils.pretrain.standins` reads these on every notebook start, while the
pretraining code itself (:mod:`asd_utils.pretrain.run`, which loads transformers' wav2vec 2.0
model) is needed only when a stand-in is not cached yet.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["CHECKPOINT_FILES", "PRETRAINABLE", "PRETRAIN_CODE_VERSION", "read_history"]

# Bump when a change to the objectives or the saving changes what a stand-in is (cache key part).
PRETRAIN_CODE_VERSION = "2"
PRETRAINABLE = ("beats", "eat", "wav2vec2")
# What standin_checkpoint returns inside a stand-in folder: a file for BEATs, the folder otherwise.
CHECKPOINT_FILES = {"beats": "BEATs_standin.pt", "eat": "", "wav2vec2": ""}


def read_history(folder: str | Path) -> dict:
    """The ``history.json`` of a stand-in folder (losses, accuracies, config, seconds)."""
    return json.loads((Path(folder) / "history.json").read_text())
