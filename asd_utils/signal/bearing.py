"""Rotating-machinery frequencies: bearing defect frequencies, the rotational frequency and its
harmonics, and amplitudes of characteristic lines and their sidebands in a spectrum.

Bearing kinematics (rolling without slip, stationary outer race, shaft rate ``f_r`` in Hz, ``n``
rolling elements of diameter ``d`` on a pitch diameter ``D``, contact angle ``phi``), with
``r = d / D * cos(phi)``:

- FTF (cage, fundamental train frequency) = ``f_r / 2 * (1 - r)``
- BPFO (ball pass, outer race)             = ``n * f_r / 2 * (1 - r)``
- BPFI (ball pass, inner race)             = ``n * f_r / 2 * (1 + r)``
- BSF (ball spin)                          = ``D / (2 d) * f_r * (1 - r**2)``

A spall on the outer race is struck BPFO times per second, one on the inner race BPFI times (and
its amplitude is modulated at ``f_r`` as it passes through the load zone: sidebands at
``BPFI +- f_r``), a spall on a ball ``2 * BSF`` times (it hits both races; modulated at FTF). These
impacts ring a structural resonance, so they appear in the envelope spectrum
(``asd_utils.signal.envelope_spectrum``), not in the plain spectrum.

Functions take ``freqs (F,)`` in Hz and ``magnitude (..., F)`` spectra and return ``(...)`` arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BearingGeometry",
    "estimate_geometry",
    "bearing_frequencies",
    "harmonic_amplitudes",
    "line_amplitude",
    "line_prominence",
    "rotation_frequency",
    "sideband_amplitude",
    "spectrum_floor",
]

_TINY = 1e-20


@dataclass(frozen=True)
class BearingGeometry:
    """Rolling-element bearing geometry.

    n_elements: number of balls/rollers; element_diameter, pitch_diameter: same unit (mm, or any);
    contact_angle_deg: 0 for a deep-groove ball bearing under radial load.
    """

    n_elements: int
    element_diameter: float
    pitch_diameter: float
    contact_angle_deg: float = 0.0

    def __post_init__(self):
        if int(self.n_elements) < 1:
            raise ValueError(f"n_elements must be >= 1, got {self.n_elements}")
        if not 0 < self.element_diameter < self.pitch_diameter:
            raise ValueError(f"need 0 < element_diameter ({self.element_diameter}) < pitch_diameter "
                             f"({self.pitch_diameter})")
        if not 0 <= self.contact_angle_deg < 90:
            raise ValueError(f"contact_angle_deg must be in [0, 90), got {self.contact_angle_deg}")

    @classmethod
    def from_ratio(cls, n_elements: int, d_over_D: float, contact_angle_deg: float = 0.0) -> BearingGeometry:
        """A geometry given by the diameter ratio ``d / D`` alone (pitch diameter 1)."""
        return cls(int(n_elements), float(d_over_D), 1.0, float(contact_angle_deg))

    @property
    def ratio(self) -> float:
        """``r = d / D * cos(contact angle)``."""
        return self.element_diameter / self.pitch_diameter * math.cos(math.radians(self.contact_angle_deg))


def bearing_frequencies(shaft_hz, geometry: BearingGeometry) -> dict[str, np.ndarray]:
    """``{"FTF", "BPFO", "BPFI", "BSF"}`` in Hz for shaft rate(s) ``shaft_hz`` (scalar or array)."""
    f = np.asarray(shaft_hz, dtype=np.float64)
    r = geometry.ratio
    n = int(geometry.n_elements)
    return {
        "FTF": f / 2.0 * (1.0 - r),
        "BPFO": n * f / 2.0 * (1.0 - r),
        "BPFI": n * f / 2.0 * (1.0 + r),
        "BSF": geometry.pitch_diameter / (2.0 * geometry.element_diameter) * f * (1.0 - r * r),
    }


def _check_spectrum(freqs, magnitude) -> tuple[np.ndarray, np.ndarray]:
    freqs = np.asarray(freqs, dtype=np.float64)
    magnitude = np.asarray(magnitude, dtype=np.float64)
    if freqs.ndim != 1 or magnitude.shape[-1] != len(freqs) or len(freqs) < 2:
        raise ValueError(f"need freqs (F,) and magnitude (..., F) with F >= 2; got {freqs.shape}, {magnitude.shape}")
    return freqs, magnitude


def line_amplitude(freqs, magnitude, line_hz, *, tolerance_hz: float | None = None) -> np.ndarray:
    """Largest magnitude within ``line_hz +- tolerance_hz`` (default: 1.5 bins), ``(...)``.

    line_hz: scalar, or ``(...)`` one frequency per spectrum (e.g. each clip's own shaft rate).
    A line outside the axis gives 0.
    """
    freqs, magnitude = _check_spectrum(freqs, magnitude)
    df = freqs[1] - freqs[0]
    tol = 1.5 * df if tolerance_hz is None else float(tolerance_hz)
    line = np.broadcast_to(np.asarray(line_hz, dtype=np.float64), magnitude.shape[:-1])
    mask = np.abs(freqs - line[..., None]) <= tol  # (..., F)
    return np.max(np.where(mask, magnitude, 0.0), axis=-1)


def spectrum_floor(freqs, magnitude, *, fmin: float | None = None, fmax: float | None = None) -> np.ndarray:
    """Median magnitude within ``[fmin, fmax]`` (the noise floor a line stands out from), ``(...)``."""
    freqs, magnitude = _check_spectrum(freqs, magnitude)
    lo = freqs[1] if fmin is None else fmin
    hi = freqs[-1] if fmax is None else fmax
    mask = (freqs >= lo) & (freqs <= hi)
    if not mask.any():
        raise ValueError(f"no frequency bin between {lo} Hz and {hi} Hz")
    return np.median(magnitude[..., mask], axis=-1)


def line_prominence(freqs, magnitude, line_hz, *, tolerance_hz: float | None = None,
                    floor_range: tuple[float, float] | None = None) -> np.ndarray:
    """``line_amplitude / spectrum_floor`` (a level-independent line height), ``(...)``."""
    lo, hi = floor_range if floor_range is not None else (None, None)
    floor = spectrum_floor(freqs, magnitude, fmin=lo, fmax=hi)
    return line_amplitude(freqs, magnitude, line_hz, tolerance_hz=tolerance_hz) / np.maximum(floor, _TINY)


def harmonic_amplitudes(freqs, magnitude, fundamental_hz, n_harmonics: int = 3, *,
                        tolerance_hz: float | None = None) -> np.ndarray:
    """Amplitudes at ``k * fundamental_hz`` for ``k = 1..n_harmonics``, ``(..., n_harmonics)``."""
    f0 = np.asarray(fundamental_hz, dtype=np.float64)
    return np.stack([line_amplitude(freqs, magnitude, k * f0, tolerance_hz=tolerance_hz)
                     for k in range(1, int(n_harmonics) + 1)], axis=-1)


def sideband_amplitude(freqs, magnitude, carrier_hz, spacing_hz, n_sidebands: int = 1, *,
                       tolerance_hz: float | None = None) -> np.ndarray:
    """Sum of the amplitudes at ``carrier_hz +- k * spacing_hz``, ``k = 1..n_sidebands``, ``(...)``.

    Amplitude modulation of a line at ``spacing_hz`` (e.g. an inner-race defect passing through the
    load zone once per shaft revolution) puts energy there.
    """
    c = np.asarray(carrier_hz, dtype=np.float64)
    s = np.asarray(spacing_hz, dtype=np.float64)
    total = 0.0
    for k in range(1, int(n_sidebands) + 1):
        for sign in (-1.0, 1.0):
            total = total + line_amplitude(freqs, magnitude, c + sign * k * s, tolerance_hz=tolerance_hz)
    return np.asarray(total, dtype=np.float64)


def rotation_frequency(freqs, magnitude, *, fmin: float, fmax: float, n_harmonics: int = 4,
                       resolution_hz: float | None = None) -> np.ndarray:
    """Rotational (fundamental) frequency by harmonic summation, ``(...)`` Hz.

    For each candidate ``f`` in ``[fmin, fmax]`` (step ``resolution_hz``, default one bin), the
    score is ``sum_k w_k * A(k f)`` over ``k = 1..n_harmonics`` with ``A`` the magnitude
    interpolated linearly on the axis and weights ``w_k = 1 / sqrt(k)``; the best candidate is
    returned. A motor or shaft shows its rate as a comb of harmonics; summing them finds the rate
    even where the fundamental itself is weak, while the mildly decaying weights break the tie a
    plain sum leaves between a lone line at ``f`` and its sub-harmonics ``f / k`` (which also have
    a "harmonic" there) in favour of ``f``.
    """
    freqs, magnitude = _check_spectrum(freqs, magnitude)
    if not 0 < fmin < fmax:
        raise ValueError(f"need 0 < fmin < fmax, got {fmin}, {fmax}")
    step = (freqs[1] - freqs[0]) if resolution_hz is None else float(resolution_hz)
    candidates = np.arange(float(fmin), float(fmax) + 0.5 * step, step)
    flat = magnitude.reshape(-1, len(freqs))
    score = np.zeros((flat.shape[0], len(candidates)))
    df = freqs[1] - freqs[0]
    for k in range(1, int(n_harmonics) + 1):
        pos = (k * candidates - freqs[0]) / df
        inside = pos <= len(freqs) - 1
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, len(freqs) - 2)
        frac = np.clip(pos - i0, 0.0, 1.0)
        values = flat[:, i0] * (1.0 - frac) + flat[:, i0 + 1] * frac
        score += np.where(inside, values, 0.0) / math.sqrt(k)
    best = candidates[np.argmax(score, axis=1)]
    return best.reshape(magnitude.shape[:-1])


# rule of thumb for rolling-element bearings: BPFO ~ 0.4 n f_r and BPFI ~ 0.6 n f_r (d/D ~ 0.2)
RULE_OF_THUMB_D_OVER_D = 0.2


TYPICAL_N_ELEMENTS = 9  # a common deep-groove ball bearing: the fallback when no line qualifies


def estimate_geometry(envelope_peak_hz, rotation_hz, *, d_over_D: float = RULE_OF_THUMB_D_OVER_D,
                      n_range: tuple[int, int] = (6, 64), min_share: float = 0.25
                      ) -> tuple[BearingGeometry, str]:
    """A stated estimate of an unknown bearing: the geometry whose BPFO is the dominant envelope line.

    envelope_peak_hz, rotation_hz: ``(N,)`` the strongest envelope-spectrum line and the rotational
    frequency of each *normal training* clip of one machine type (Hz). A line can be a BPFO only
    if its order ``peak / rotation`` is at least ``0.4 * n_range[0]`` and not within 0.1 of an
    integer (a shaft harmonic). When at least ``min_share`` of the clips have such a line, their
    median order is taken as BPFO, and the rule of thumb ``d / D = 0.2`` (BPFO ≈ 0.4 n f_r, BPFI ≈
    0.6 n f_r) gives ``n = round(order / 0.4)`` rolling elements (clipped to ``n_range``). Otherwise
    the estimate is a typical bearing of :data:`TYPICAL_N_ELEMENTS` elements. Returns
    ``(BearingGeometry.from_ratio(n, d_over_D), source)``, source ``"envelope line"`` or
    ``"typical bearing"``; every defect line then follows each clip's own rotational frequency.
    """
    peak = np.asarray(envelope_peak_hz, dtype=np.float64)
    rot = np.asarray(rotation_hz, dtype=np.float64)
    ok = np.isfinite(peak) & np.isfinite(rot) & (rot > 0) & (peak > 0)
    if not ok.any():
        raise ValueError("no training clip with a positive envelope line and rotational frequency to estimate from")
    order = peak[ok] / rot[ok]
    bpfo_per_element = 0.5 * (1.0 - float(d_over_D))
    candidate = (order >= bpfo_per_element * n_range[0]) & (np.abs(order - np.round(order)) > 0.1)
    if candidate.mean() < float(min_share):
        return BearingGeometry.from_ratio(TYPICAL_N_ELEMENTS, float(d_over_D)), "typical bearing"
    n = int(np.clip(round(float(np.median(order[candidate])) / bpfo_per_element), n_range[0], n_range[1]))
    return BearingGeometry.from_ratio(n, float(d_over_D)), "envelope line"

