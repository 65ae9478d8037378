"""Mixup (Zhang et al., ICLR 2018) as used by angular-margin ASD systems.

The ASD systems (Wilkinghoff's sub-cluster AdaCos line of work, the IOA three-subnetwork report)
mix raw waveforms and their one-hot class targets: ``x' = lam * x + (1 - lam) * x[perm]`` and
``y' = lam * y + (1 - lam) * y[perm]`` with ``lam ~ Beta(alpha, alpha)``. The losses in
``asd_utils.training.losses`` accept such soft targets.
"""

from __future__ import annotations

import numpy as np
import torch


def _numpy_rng(generator: torch.Generator | np.random.Generator | None) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    # derive a NumPy generator from the torch one, so the torch generator's state fully determines
    # the draw (and a checkpointed torch generator resumes the same sequence)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return np.random.default_rng(seed)


def one_hot(labels: torch.Tensor, n_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``labels (B,) int64`` -> ``(B, n_classes)`` one-hot; a ``(B, C)`` float input is returned as is."""
    if labels.dim() == 2:
        return labels.to(dtype)
    return torch.nn.functional.one_hot(labels.long(), n_classes).to(dtype)


def mixup(x: torch.Tensor, y_onehot: torch.Tensor, alpha: float = 1.0,
          generator: torch.Generator | np.random.Generator | None = None, *, prob: float = 1.0,
          per_sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix a batch with a random permutation of itself.

    Args:
        x: ``(B, ...)`` float inputs (e.g. waveforms ``(B, samples)``).
        y_onehot: ``(B, C)`` float targets (one-hot or already soft).
        alpha: Beta distribution parameter; ``lam ~ Beta(alpha, alpha)``.
        generator: a ``torch.Generator`` (the permutation and, through a derived NumPy generator,
            the Beta draws come from it), a ``numpy.random.Generator``, or None (torch's global RNG).
        prob: each sample is mixed with this probability (otherwise ``lam = 1``); Wilkinghoff's
            systems use 0.5, classic mixup 1.0.
        per_sample: one ``lam`` per sample (ASD practice) or one for the whole batch.

    Returns:
        ``(x_mixed, y_mixed, lam)`` with ``lam`` of shape ``(B,)`` (float32, in [0, 1]).
    """
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    if y_onehot.dim() != 2 or y_onehot.shape[0] != x.shape[0]:
        raise ValueError(f"y_onehot must be (B, C) with B={x.shape[0]}, got {tuple(y_onehot.shape)}")
    batch = x.shape[0]
    if isinstance(generator, np.random.Generator):
        perm = torch.from_numpy(generator.permutation(batch))
    else:
        perm = torch.randperm(batch, generator=generator)
    rng = _numpy_rng(generator)
    lam_np = rng.beta(alpha, alpha, size=batch if per_sample else 1)
    if prob < 1.0:
        keep = rng.random(batch) >= prob
        lam_np = np.where(keep, 1.0, np.broadcast_to(lam_np, (batch,)))
    lam = torch.as_tensor(np.broadcast_to(lam_np, (batch,)).copy(), dtype=torch.float32)
    perm = perm.to(x.device)
    lam_x = lam.to(device=x.device, dtype=x.dtype).view(batch, *([1] * (x.dim() - 1)))
    lam_y = lam.to(device=y_onehot.device, dtype=y_onehot.dtype).view(batch, 1)
    x_mixed = lam_x * x + (1.0 - lam_x) * x[perm]
    y_mixed = lam_y * y_onehot + (1.0 - lam_y) * y_onehot[perm]
    return x_mixed, y_mixed, lam
