import math
from types import SimpleNamespace

import pytest
import torch

from asd_utils.pretrain.loop import scheduled_steps
from asd_utils.training import build_scheduler, lr_multiplier


def lrs(name, warmup, total, n, **kw):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = build_scheduler(opt, name, warmup, total, **kw)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_constant_with_linear_warmup():
    assert lrs("constant", 4, None, 6) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    assert lrs("constant", 0, None, 2) == pytest.approx([0.1, 0.1])


def test_cosine_decays_to_min_ratio_at_total_steps():
    values = lrs("cosine", 2, 10, 12, min_ratio=0.1)
    assert values[:2] == pytest.approx([0.05, 0.1])
    progress = 3 / 8
    assert values[5] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))))
    assert values[10] == pytest.approx(0.01) and values[11] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(values[1:], values[2:]))


def test_inverse_sqrt_is_continuous_noam():
    f = lr_multiplier("inverse_sqrt", 4)
    for step in range(20):
        assert f(step) == pytest.approx(min((step + 1) / 4, math.sqrt(4 / (step + 1))))
    assert lr_multiplier("inverse-sqrt", 0)(8) == pytest.approx(1 / 3)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_multiplier("step")
    with pytest.raises(ValueError, match="total_steps"):
        lr_multiplier("cosine", 2)
    with pytest.raises(ValueError, match="warmup"):
        lr_multiplier("constant", -1)


# The multipliers of the hand-written schedules this module had before it was built on transformers'
# schedules, recorded from that code (repr of each float). Cosine and constant are bit for bit the
# same; inverse-sqrt differs in the last bit of some steps (1 / sqrt(x / W) against sqrt(W / x)).
BEFORE_COSINE_W2_T10_MIN01 = [0.5, 1.0, 1.0, 0.9657457896300791, 0.8681980515339464, 0.7222075445642904, 0.55,
                              0.3777924554357096, 0.23180194846605365, 0.13425421036992097, 0.1, 0.1]
BEFORE_INVERSE_SQRT_W4 = [0.25, 0.5, 0.75, 1.0, 0.8944271909999159, 0.816496580927726, 0.7559289460184544,
                          0.7071067811865476, 0.6666666666666666]
BEFORE_INVERSE_SQRT_W0 = [1.0, 0.7071067811865476, 0.5773502691896257, 0.5]
BEFORE_COSINE_W10_T5_MIN005 = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 0.05, 0.05]
# asd_utils.pretrain.loop's learning rates (base 0.1, warm-up 2, 10 steps, decay to 5 %)
BEFORE_PRETRAIN_W2_T10 = [0.05, 0.1, 0.1, 0.09638427779428613, 0.08608757210636102, 0.07067746303734178,
                          0.052500000000000005, 0.03432253696265824, 0.018912427893638995, 0.008615722205713881]


def test_learning_rates_per_step_equal_the_hand_written_schedules():
    """Built on transformers, the schedules give the same multiplier at every step as before."""
    assert [lr_multiplier("cosine", 2, 10, min_ratio=0.1)(s) for s in range(12)] == BEFORE_COSINE_W2_T10_MIN01
    assert [lr_multiplier("cosine", 10, 5, min_ratio=0.05)(s) for s in range(13)] == BEFORE_COSINE_W10_T5_MIN005
    assert [lr_multiplier("constant", 4)(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [lr_multiplier("inverse_sqrt", 4)(s) for s in range(9)] == pytest.approx(BEFORE_INVERSE_SQRT_W4,
                                                                                      rel=1e-15, abs=0)
    assert [lr_multiplier("inverse_sqrt", 0)(s) for s in range(4)] == pytest.approx(BEFORE_INVERSE_SQRT_W0,
                                                                                      rel=1e-15, abs=0)
    # the scheduler applies them to the base rate, one per optimizer step
    assert lrs("cosine", 2, 10, 12, min_ratio=0.1) == [0.1 * v for v in BEFORE_COSINE_W2_T10_MIN01]


def test_pretraining_loop_uses_the_same_cosine_schedule():
    """asd_utils.pretrain.loop sets cfg.lr times the cosine multiplier (5 % floor) before each step."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    seen = [opt.param_groups[0]["lr"] for _ in scheduled_steps(opt, SimpleNamespace(steps=10, warmup_steps=2, lr=0.1),
                                                               desc="test")]
    assert seen == pytest.approx(BEFORE_PRETRAIN_W2_T10, rel=1e-15, abs=0)
