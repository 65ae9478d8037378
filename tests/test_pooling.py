"""Pooling of (batch, tokens, dim) hidden states."""

from __future__ import annotations

import pytest
import torch

from asd_utils.backbones.pooling import beats_patch_grid, cls_pool, genrep_pool, max_pool, mean_pool


@pytest.fixture
def h():
    torch.manual_seed(0)
    return torch.randn(3, 24, 5)  # 3 time patches x 8 frequency patches


def test_simple_pools(h):
    torch.testing.assert_close(mean_pool(h), h.mean(1))
    torch.testing.assert_close(max_pool(h), h.max(dim=1).values)
    torch.testing.assert_close(cls_pool(h), h[:, 0])
    assert mean_pool(h).shape == max_pool(h).shape == cls_pool(h).shape == (3, 5)


def test_patch_grid_is_time_major(h):
    grid = beats_patch_grid(h)
    assert grid.shape == (3, 3, 8, 5)
    for t in range(3):
        for f in range(8):
            torch.testing.assert_close(grid[:, t, f], h[:, t * 8 + f])


def test_genrep_is_time_mean_per_frequency_patch(h):
    out = genrep_pool(h)
    assert out.shape == (3, 8 * 5)
    for f in range(8):
        expected = torch.stack([h[:, t * 8 + f] for t in range(3)], dim=1).mean(1)
        torch.testing.assert_close(out[:, f * 5 : (f + 1) * 5], expected)
    # Mean over GenRep's frequency blocks equals plain mean pooling.
    torch.testing.assert_close(out.view(3, 8, 5).mean(1), mean_pool(h))


def test_pooling_differentiable(h):
    h = h.clone().requires_grad_(True)
    genrep_pool(h).sum().backward()
    assert h.grad is not None


def test_bad_shapes():
    with pytest.raises(ValueError, match="multiple"):
        beats_patch_grid(torch.zeros(1, 10, 4))
    with pytest.raises(ValueError, match="batch, tokens, dim"):
        mean_pool(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="no tokens"):
        max_pool(torch.zeros(2, 0, 4))
