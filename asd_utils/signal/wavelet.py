"""Wavelet packet energy distribution and its entropy (PyWavelets).

A wavelet packet decomposition to ``level`` splits a signal into ``2**level`` sub-bands of equal
width (ordered here from low to high frequency). The share of the signal energy in each band is a
probability distribution ``p``; its Shannon entropy ``-sum p log p`` is high when the energy is
spread over many bands (broadband noise, normal operation with many sources) and drops when it
gathers in a few bands (a tone, a resonance excited by impacts). Report 001 reads "a sharp drop in
energy entropy within specific frequency bands" as a sign of incipient faults; besides the entropy
across bands, :func:`band_temporal_entropy` measures, per band, how evenly that band's energy is
spread over time (a transient concentrates it, so the entropy drops).
"""

from __future__ import annotations

import numpy as np
import pywt

__all__ = ["band_temporal_entropy", "wavelet_packet_energies", "wavelet_packet_energy_entropy",
           "wavelet_packet_coefficients"]

_TINY = 1e-300


def _shannon(p: np.ndarray, normalise: bool) -> np.ndarray:
    """Entropy (nats) of distributions along the last axis; divided by ``log(n)`` when ``normalise``."""
    total = p.sum(axis=-1, keepdims=True)
    q = np.where(total > 0, p / np.maximum(total, _TINY), 1.0 / p.shape[-1])
    h = -np.sum(np.where(q > 0, q * np.log(np.maximum(q, _TINY)), 0.0), axis=-1)
    return h / np.log(p.shape[-1]) if normalise and p.shape[-1] > 1 else h


def wavelet_packet_coefficients(x, *, wavelet: str = "db4", level: int = 4,
                                mode: str = "symmetric") -> list[np.ndarray]:
    """Terminal-node coefficients of a wavelet packet decomposition, low to high frequency.

    x: ``(..., samples)`` (float32 is kept, else float64). Returns ``2**level`` arrays of shape
    ``(..., n_coefficients)``, in frequency order (PyWavelets' ``order="freq"``).
    """

    x = np.asarray(x)
    if x.dtype != np.float32:  # float32 input stays float32 (twice as fast); anything else float64
        x = x.astype(np.float64)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"expected a signal (..., samples) with samples > 0, got shape {x.shape}")
    if int(level) < 1:
        raise ValueError(f"level must be >= 1, got {level}")
    max_level = pywt.dwt_max_level(x.shape[-1], pywt.Wavelet(wavelet).dec_len)
    if int(level) > max(max_level, 1):
        raise ValueError(f"level {level} is too deep for {x.shape[-1]} samples with wavelet {wavelet!r} "
                         f"(at most {max_level})")
    packet = pywt.WaveletPacket(x, wavelet, mode=mode, maxlevel=int(level), axis=-1)
    return [node.data for node in packet.get_level(int(level), order="freq")]


def _nodes(x, coefficients, wavelet, level, mode) -> list[np.ndarray]:
    if coefficients is not None:
        return [np.asarray(c, dtype=np.float64) for c in coefficients]
    return wavelet_packet_coefficients(x, wavelet=wavelet, level=level, mode=mode)


def wavelet_packet_energies(x=None, *, wavelet: str = "db4", level: int = 4, mode: str = "symmetric",
                            coefficients: list[np.ndarray] | None = None) -> np.ndarray:
    """Energy (sum of squared coefficients) of each of the ``2**level`` bands, ``(..., 2**level)``.

    coefficients: the output of :func:`wavelet_packet_coefficients`, to reuse one decomposition
    (then ``x`` is not used).
    """
    nodes = _nodes(x, coefficients, wavelet, level, mode)
    return np.stack([np.sum(c * c, axis=-1) for c in nodes], axis=-1)


def wavelet_packet_energy_entropy(x=None, *, wavelet: str = "db4", level: int = 4, mode: str = "symmetric",
                                  normalise: bool = True, coefficients: list[np.ndarray] | None = None
                                  ) -> np.ndarray:
    """Shannon entropy of the band-energy shares, ``(...)``.

    normalise: divide by ``log(2**level)`` so that 1 means equal energy in every band and 0 all
    energy in one band. White noise gives close to 1, a pure tone close to 0. coefficients: as in
    :func:`wavelet_packet_energies`.
    """
    energies = wavelet_packet_energies(x, wavelet=wavelet, level=level, mode=mode, coefficients=coefficients)
    return _shannon(energies, normalise)


def band_temporal_entropy(x=None, *, wavelet: str = "db4", level: int = 4, n_segments: int = 32,
                          mode: str = "symmetric", coefficients: list[np.ndarray] | None = None) -> np.ndarray:
    """Per band, the normalised entropy of its energy over ``n_segments`` equal time segments.

    Returns ``(..., 2**level)`` in [0, 1]: 1 when the band's energy is spread evenly over time,
    lower when it arrives in bursts (impacts, clicks). Segments hold
    ``n_coefficients // n_segments`` coefficients (the remainder at the end is left out).
    coefficients: as in :func:`wavelet_packet_energies`.
    """
    nodes = _nodes(x, coefficients, wavelet, level, mode)
    out = []
    for c in nodes:
        seg = c.shape[-1] // int(n_segments)
        if seg < 1:
            raise ValueError(f"{c.shape[-1]} coefficients per band cannot be split into {n_segments} segments")
        blocks = c[..., : seg * int(n_segments)].reshape(c.shape[:-1] + (int(n_segments), seg))
        out.append(_shannon(np.sum(blocks * blocks, axis=-1), True))
    return np.stack(out, axis=-1)
