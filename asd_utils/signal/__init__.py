"""Signal analysis that needs no network: filters, Hilbert envelope and envelope spectrum.

Used by the mechanism-based analysis of report 001 and the characteristic-frequency pseudo-labels
of report 002. Every function works on NumPy arrays ``(..., samples)`` along the last axis.
"""

from asd_utils.signal.envelope import dominant_frequency, envelope_spectrum, hilbert_envelope
from asd_utils.signal.filters import bandpass, highpass

__all__ = ["bandpass", "dominant_frequency", "envelope_spectrum", "highpass", "hilbert_envelope"]
