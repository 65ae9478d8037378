"""Mix noise into machine sounds at a chosen signal-to-noise ratio.

Used to mix the supplemental noise-only clips of DCASE 2025 into training clips (report 001) and
into supplemental clean-machine clips to simulate new training clips (report 002).
"""

from __future__ import annotations

import numpy as np
import torch

_EPS = 1e-12


def _fit_length(noise, n: int):
    """Tile or crop ``noise (..., m)`` to ``n`` samples along the last axis."""
    m = noise.shape[-1]
    if m == 0:
        raise ValueError("noise clip is empty (0 samples)")
    reps = -(-n // m)
    if isinstance(noise, torch.Tensor):
        return noise.repeat(*([1] * (noise.dim() - 1)), reps)[..., :n]
    return np.tile(noise, (1,) * (noise.ndim - 1) + (reps,))[..., :n]


def mix_at_snr(signal, noise, snr_db):
    """``signal + g * noise`` with ``g`` chosen so that ``10 log10(P_signal / P_noise') = snr_db``.

    Args:
        signal: ``(..., samples)`` NumPy array or torch tensor.
        noise: ``(..., m)`` of the same kind, broadcastable to ``signal`` after being tiled or
            cropped to ``samples``.
        snr_db: scalar or ``(...)`` per-row SNR in dB.

    Returns:
        The mixture, same type, shape and dtype as ``signal``. Powers are mean squares over the last
        axis; an all-zero noise row is added unscaled (nothing to scale).
    """
    is_torch = isinstance(signal, torch.Tensor)
    noise = _fit_length(noise, signal.shape[-1])
    if is_torch:
        noise = noise.to(signal.dtype)
        snr = torch.as_tensor(snr_db, dtype=signal.dtype, device=signal.device)
        p_signal = signal.pow(2).mean(dim=-1)
        p_noise = noise.pow(2).mean(dim=-1)
        gain = torch.sqrt(p_signal / (p_noise.clamp_min(_EPS) * 10.0 ** (snr / 10.0)))
        return signal + gain.unsqueeze(-1) * noise
    signal = np.asarray(signal)
    noise = np.asarray(noise, dtype=signal.dtype)
    snr = np.asarray(snr_db, dtype=np.float64)
    p_signal = np.mean(np.square(signal, dtype=np.float64), axis=-1)
    p_noise = np.mean(np.square(noise, dtype=np.float64), axis=-1)
    gain = np.sqrt(p_signal / (np.maximum(p_noise, _EPS) * 10.0 ** (snr / 10.0)))
    return (signal + gain[..., None] * noise).astype(signal.dtype, copy=False)


class NoiseMixer:
    """Random noise augmentation for a training batch.

    Args:
        noise_waves: ``(N, samples)`` float32 noise-only clips (NumPy or torch), N >= 1.
        snr_db_range: ``(low, high)`` dB; each mixed row draws its SNR uniformly from it.
        p: probability that a row is mixed.

    ``mixer(waves (B, T) torch float, generator=None) -> (B, T)``: rows drawn with probability ``p``
    get a random noise clip (a random offset into it, tiled to ``T``) at a random SNR; the others
    are returned unchanged. All randomness comes from ``generator`` (a ``torch.Generator``).
    """

    def __init__(self, noise_waves, snr_db_range: tuple[float, float] = (0.0, 10.0), p: float = 0.5):
        noise = torch.as_tensor(np.asarray(noise_waves, dtype=np.float32))
        if noise.dim() != 2 or noise.shape[0] == 0 or noise.shape[1] == 0:
            raise ValueError(f"noise_waves must be (N >= 1, samples >= 1), got {tuple(noise.shape)}")
        low, high = (float(v) for v in snr_db_range)
        if high < low:
            raise ValueError(f"snr_db_range must be (low, high) with low <= high, got {snr_db_range}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.noise, self.snr_db_range, self.p = noise, (low, high), float(p)

    def __call__(self, waves: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if waves.dim() != 2:
            raise ValueError(f"waves must be (batch, samples), got {tuple(waves.shape)}")
        b, t = waves.shape
        mixed_rows = torch.rand(b, generator=generator) < self.p
        which = torch.randint(self.noise.shape[0], (b,), generator=generator)
        offsets = torch.randint(self.noise.shape[1], (b,), generator=generator)
        low, high = self.snr_db_range
        snr = low + (high - low) * torch.rand(b, generator=generator)
        if not bool(mixed_rows.any()):
            return waves
        rows = torch.nonzero(mixed_rows).flatten()
        noise = torch.stack([torch.roll(self.noise[int(which[i])], -int(offsets[i])) for i in rows])
        out = waves.clone()
        out[rows] = mix_at_snr(waves[rows], noise.to(waves.device), snr[rows].to(waves.device))
        return out
