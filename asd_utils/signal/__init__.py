"""Signal analysis that needs no network: filters, Hilbert envelope and envelope spectrum.

Used by the mechanism-based analysis of report 001 and the characteristic-frequency pseudo-labels
of report 002. Every function works on NumPy arrays ``(..., samples)`` along the last axis.
"""

from asd_utils.signal.bearing import BearingGeometry, bearing_frequencies, rotation_frequency
from asd_utils.signal.envelope import dominant_frequency, envelope_spectrum, hilbert_envelope
from asd_utils.signal.filters import bandpass, highpass
from asd_utils.signal.indicators import (
    crest_factor,
    kurtosis,
    rms,
    skewness,
    stft_energy_concentration,
    time_domain_indicators,
)
from asd_utils.signal.mechanism import IndicatorExtractor, MechanismScorer
from asd_utils.signal.wavelet import wavelet_packet_energies, wavelet_packet_energy_entropy

__all__ = ["bandpass", "dominant_frequency", "envelope_spectrum", "highpass", "hilbert_envelope"]
# condition indicators, wavelet packet entropy, bearing frequencies, mechanism-based analysis (report 001)
__all__ += ["BearingGeometry", "IndicatorExtractor", "MechanismScorer", "bearing_frequencies", "crest_factor",
            "kurtosis", "rms", "rotation_frequency", "skewness", "stft_energy_concentration",
            "time_domain_indicators", "wavelet_packet_energies", "wavelet_packet_energy_entropy"]
