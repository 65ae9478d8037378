import math

import pytest
import torch

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
