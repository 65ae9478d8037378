import numpy as np
import pytest
import torch

from asd_utils.training import mixup, one_hot


def test_mixup_mixes_inputs_and_targets_with_the_same_lambda():
    x = torch.arange(12, dtype=torch.float32).view(4, 3)
    y = one_hot(torch.tensor([0, 1, 2, 1]), 3)
    gen = torch.Generator().manual_seed(0)
    xm, ym, lam = mixup(x, y, alpha=0.4, generator=gen)
    assert xm.shape == x.shape and ym.shape == y.shape and lam.shape == (4,)
    assert torch.all((lam >= 0) & (lam <= 1))
    torch.testing.assert_close(ym.sum(dim=1), torch.ones(4))
    # recover the permutation: each mixed row is lam * x_i + (1 - lam) * x_j for one j
    for i in range(4):
        candidates = [j for j in range(4)
                      if torch.allclose(xm[i], lam[i] * x[i] + (1 - lam[i]) * x[j], atol=1e-5)]
        assert candidates
        j = candidates[0]
        torch.testing.assert_close(ym[i], lam[i] * y[i] + (1 - lam[i]) * y[j])


def test_mixup_is_reproducible_from_the_generator():
    x, y = torch.randn(8, 5), one_hot(torch.randint(0, 3, (8,)), 3)
    a = mixup(x, y, 1.0, torch.Generator().manual_seed(5))
    b = mixup(x, y, 1.0, torch.Generator().manual_seed(5))
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    c = mixup(x, y, 1.0, np.random.default_rng(1), per_sample=False)
    assert torch.all(c[2] == c[2][0])


def test_mixup_prob_zero_leaves_batch_unchanged():
    x, y = torch.randn(6, 4), one_hot(torch.tensor([0, 1, 0, 1, 0, 1]), 2)
    xm, ym, lam = mixup(x, y, 0.5, torch.Generator().manual_seed(0), prob=0.0)
    assert torch.equal(lam, torch.ones(6)) and torch.equal(xm, x) and torch.equal(ym, y)


def test_mixup_validates():
    with pytest.raises(ValueError):
        mixup(torch.zeros(2, 3), torch.zeros(2, 2), alpha=0)
    with pytest.raises(ValueError):
        mixup(torch.zeros(2, 3), torch.zeros(3, 2), alpha=1)
