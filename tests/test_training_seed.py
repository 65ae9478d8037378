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


def test_deterministic_switches_without_and_with_inductor_loaded():
    """Both paths leave ATen deterministic (warn only); the cheap one hands inductor its switch
    through TORCHINDUCTOR_DETERMINISTIC, so a later torch.compile is deterministic too."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json, sys, torch\n"
            "from asd_utils.training import seed_everything\n"
            "if sys.argv[1] == 'loaded': import torch._inductor.config\n"
            "seed_everything(0)\n"
            "before = 'torch._inductor.config' in sys.modules\n"
            "import torch._inductor.config as c\n"
            "print(json.dumps([before, torch.are_deterministic_algorithms_enabled(),\n"
            "                  torch.is_deterministic_algorithms_warn_only_enabled(), c.deterministic]))")
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_DETERMINISTIC"}
    for mode, inductor_before in (("fresh", False), ("loaded", True)):
        out = subprocess.run([sys.executable, "-c", code, mode], env=env, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout.strip().splitlines()[-1]) == [inductor_before, True, True, True]


def test_rng_states_round_trip_and_load_weights_only(tmp_path):
    seed_everything(3)
    np.random.standard_normal()  # leave a cached gaussian in numpy's state
    states = get_rng_states()
    expected = draw()
    torch.save(states, tmp_path / "rng.pt")
    seed_everything(99)
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert draw() == expected


def _pin_in_subprocess(env_extra: dict, code: str) -> dict:
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


PIN_CODE = """
import json, os, torch
from asd_utils.training.seed import pin_cpu_numerics
state = pin_cpu_numerics(threads=1)
state["env"] = {k: os.environ.get(k) for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")}
state["avx2"] = bool(torch.cpu._is_avx2_supported())
print(json.dumps(state))
"""


def test_pin_cpu_numerics_caps_the_kernels_at_avx2_and_fixes_threads():
    state = _pin_in_subprocess({}, PIN_CODE)
    assert state["threads"] == 1
    if state["avx2"]:
        assert state["env"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
        assert state["pinned"] == state["env"] and state["aten_capability"] == "AVX2"
    else:  # nothing is pinned on a CPU without AVX2
        assert state["pinned"] == {} and state["env"]["ATEN_CPU_CAPABILITY"] is None


def test_pin_cpu_numerics_leaves_a_users_choice_alone():
    state = _pin_in_subprocess({"ATEN_CPU_CAPABILITY": "default"}, PIN_CODE)
    assert state["env"]["ATEN_CPU_CAPABILITY"] == "default" and state["aten_capability"] == "DEFAULT"
    import pytest

    from asd_utils.training.seed import pin_cpu_numerics

    with pytest.raises(ValueError, match="isa"):
        pin_cpu_numerics(isa="avx512")
