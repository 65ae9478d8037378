"""The embedded synthetic DCASE-format dataset: the compendium's default data.

Seven machine types named like the DCASE 2025 Task 2 development set (ToyCar, ToyTrain, bearing,
fan, gearbox, slider, valve), each rendered by a small physical sound model in numpy, mixed with
factory background noise, with a source and a target domain and several subtle anomaly kinds.

    >>> from asd_utils.synth import ensure_dataset
    >>> root = ensure_dataset("smoke")          # data/synth_smoke, generated on first use

Command line: ``python -m asd_utils.synth OUT --profile smoke|default|full [--seed N] [--names A,B,...]
[--variant envelope|realistic]`` (:data:`DEFAULT_VARIANT` when omitted).
"""

from asd_utils.synth.generate import (
    DEFAULT_VARIANT,
    GENERATOR_VERSION,
    PROFILES,
    SAMPLE_RATE,
    VARIANTS,
    ClipJob,
    Profile,
    clip_rng,
    ensure_dataset,
    expected_manifest,
    generate_dataset,
    plan_machine,
    read_manifest,
    render_job,
)
from asd_utils.synth.machines import MACHINE_TYPES, MachineModel, bearing_frequencies, get_machine

__all__ = [
    "DEFAULT_VARIANT", "GENERATOR_VERSION", "MACHINE_TYPES", "PROFILES", "SAMPLE_RATE", "VARIANTS", "ClipJob",
    "MachineModel", "Profile",
    "bearing_frequencies", "clip_rng", "ensure_dataset", "expected_manifest", "generate_dataset",
    "get_machine", "plan_machine", "read_manifest", "render_job",
]
