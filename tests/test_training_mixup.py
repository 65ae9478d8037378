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
    # lam: Beta(0.4, 0.4) draws of the NumPy generator seeded from the torch generator after its permutation
    replay = torch.Generator().manual_seed(0)
    torch.randperm(4, generator=replay)
    seed = int(torch.randint(0, 2**62, (1,), generator=replay).item())
    expected = np.random.default_rng(seed).beta(0.4, 0.4, size=4)
    torch.testing.assert_close(lam, torch.as_tensor(expected, dtype=torch.float32))
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


@pytest.mark.parametrize("alpha", [0.4, 1.0, 4.0])
def test_mixup_lambda_follows_beta_alpha_alpha(alpha):
    """20 000 per-sample draws at a fixed seed: a Kolmogorov-Smirnov test accepts Beta(alpha, alpha)
    and rejects the neighbouring Beta(2 alpha, 2 alpha) and Beta(1, 1) (for alpha != 1). (lam is float32:
    below alpha ~ 0.3 the draws that round to exactly 1.0 carry enough mass to fail the test.)"""
    import scipy.stats

    x, y = torch.zeros(20000, 1), one_hot(torch.zeros(20000, dtype=torch.long), 2)
    lam = mixup(x, y, alpha, torch.Generator().manual_seed(7))[2].double().numpy()
    assert scipy.stats.kstest(lam, scipy.stats.beta(alpha, alpha).cdf).pvalue > 0.01
    assert scipy.stats.kstest(lam, scipy.stats.beta(2 * alpha, 2 * alpha).cdf).pvalue < 1e-6
    if alpha != 1.0:
        assert scipy.stats.kstest(lam, scipy.stats.uniform.cdf).pvalue < 1e-6
    # the mean is 1/2 and the variance 1 / (4 (2 alpha + 1)) of Beta(alpha, alpha)
    assert lam.mean() == pytest.approx(0.5, abs=0.01)
    assert lam.var() == pytest.approx(1.0 / (4.0 * (2.0 * alpha + 1.0)), rel=0.05)
