"""Training stack shared by the notebooks: seeding, schedules, EMA, mixup, class labels, trainer.

>>> from asd_utils.training import Trainer, seed_everything, build_class_labels, mixup
"""

from asd_utils.training.ema import EMA
from asd_utils.training.labels import build_class_labels
from asd_utils.training.mixup import mixup, one_hot
from asd_utils.training.noise_mix import NoiseMixer, mix_at_snr
from asd_utils.training.schedulers import SCHEDULES, build_scheduler, lr_multiplier
from asd_utils.training.seed import get_rng_states, seed_everything, set_rng_states
from asd_utils.training.specaugment import SpecAugment
from asd_utils.training.statex import SelfSupervisedHeads, featex, featex_targets, statex, statex_targets
from asd_utils.training.trainer import (
    CHECKPOINT_NAME,
    OPTIMIZERS,
    Trainer,
    TrainState,
    build_optimizer,
    extract_embeddings,
)

__all__ = [
    "CHECKPOINT_NAME",
    "EMA",
    "NoiseMixer",
    "OPTIMIZERS",
    "SCHEDULES",
    "SelfSupervisedHeads",
    "SpecAugment",
    "TrainState",
    "Trainer",
    "build_class_labels",
    "build_optimizer",
    "build_scheduler",
    "extract_embeddings",
    "featex",
    "featex_targets",
    "get_rng_states",
    "lr_multiplier",
    "mix_at_snr",
    "mixup",
    "one_hot",
    "seed_everything",
    "set_rng_states",
    "statex",
    "statex_targets",
]
