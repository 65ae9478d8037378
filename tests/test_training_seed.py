import random

import numpy as np
import torch

from asd_utils.training import get_rng_states, seed_everything, set_rng_states


def draw():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_repeats_draws():
    assert seed_everything(7) == 7
    first = draw()
    seed_everything(7)
    assert draw() == first
    seed_everything(8)
    assert draw() != first
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_rng_states_round_trip_and_load_weights_only(tmp_path):
    seed_everything(3)
    np.random.standard_normal()  # leave a cached gaussian in numpy's state
    states = get_rng_states()
    expected = draw()
    torch.save(states, tmp_path / "rng.pt")
    seed_everything(99)
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert draw() == expected
