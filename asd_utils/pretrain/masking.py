"""Masks for masked-prediction pretraining (boolean, ``True`` = masked).

- :func:`random_mask`: BEATs-style random patch masking, exactly ``round(ratio * tokens)`` masked
  tokens per row.
- :func:`inverse_block_mask`: data2vec 2.0 / EAT inverse block masking on the (time, frequency)
  patch grid: square blocks of ``block`` x ``block`` patches around random centres are *kept*
  (visible to the student) until ``1 - mask_prob`` of the grid is kept; everything else is masked.
  The kept count is then made exact (extra kept patches re-masked at random, missing ones added at
  random), so every row masks exactly ``round(mask_prob * tokens)`` patches.

Token order is time-major (token ``t * n_freq + f``), as BEATs and EAT flatten their patches.
"""

from __future__ import annotations

import torch

__all__ = ["inverse_block_mask", "random_mask"]


def _check_ratio(name: str, ratio: float) -> float:
    ratio = float(ratio)
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {ratio}")
    return ratio


def random_mask(batch: int, tokens: int, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(batch, tokens) bool, ``round(ratio * tokens)`` True per row, positions uniformly random."""
    ratio = _check_ratio("mask ratio", ratio)
    n_mask = int(round(ratio * tokens))
    order = torch.rand(batch, tokens, generator=generator).argsort(dim=1)
    mask = torch.zeros(batch, tokens, dtype=torch.bool)
    mask.scatter_(1, order[:, :n_mask], True)
    return mask


def inverse_block_mask(
    batch: int,
    grid: tuple[int, int],
    mask_prob: float,
    block: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(batch, n_time * n_freq) bool: inverse block mask of the (n_time, n_freq) patch grid.

    mask_prob: fraction of patches masked (EAT: 0.8); block: side of the kept blocks in patches
    (EAT's ``mask_length``: 5), clipped to the grid.
    """
    mask_prob = _check_ratio("mask_prob", mask_prob)
    n_time, n_freq = int(grid[0]), int(grid[1])
    if n_time < 1 or n_freq < 1 or block < 1:
        raise ValueError(f"inverse_block_mask: bad grid {grid} or block {block}")
    tokens = n_time * n_freq
    n_keep = tokens - int(round(mask_prob * tokens))
    keep = torch.zeros(batch, n_time, n_freq, dtype=torch.bool)
    half = (block - 1) // 2
    for row in range(batch):
        # add blocks until enough patches are kept (bounded: each block keeps >= 1 new patch w.p. > 0)
        for _ in range(4 * tokens):
            if int(keep[row].sum()) >= n_keep:
                break
            t = int(torch.randint(n_time, (1,), generator=generator))
            f = int(torch.randint(n_freq, (1,), generator=generator))
            t0, f0 = max(0, t - half), max(0, f - half)
            keep[row, t0 : t0 + block, f0 : f0 + block] = True
    flat = keep.reshape(batch, tokens)
    noise = torch.rand(batch, tokens, generator=generator)
    for row in range(batch):
        kept = int(flat[row].sum())
        if kept > n_keep:  # re-mask a random subset of the kept patches
            idx = torch.nonzero(flat[row]).squeeze(1)
            drop = idx[noise[row, idx].argsort()[: kept - n_keep]]
            flat[row, drop] = False
        elif kept < n_keep:  # (only when the block loop gave up) keep random extra patches
            idx = torch.nonzero(~flat[row]).squeeze(1)
            flat[row, idx[noise[row, idx].argsort()[: n_keep - kept]]] = True
    return ~flat
