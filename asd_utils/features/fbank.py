"""Kaldi-compatible log Mel filter bank energies, batched and vectorised in torch.

Hand-written because torchaudio (whose ``compliance.kaldi.fbank`` this reproduces) does not import
with the CPU torch this project pins, and no other library computes Kaldi's fbank bit for bit.

BEATs and EAT were trained on ``torchaudio.compliance.kaldi.fbank`` features; this module computes
the same features from Kaldi's definitions (``feat/feature-fbank.cc``, ``feat/mel-computations.cc``):

1. cut the signal into frames of ``frame_length`` ms every ``frame_shift`` ms (``snip_edges``:
   only whole frames; otherwise Kaldi's reflection padding and ``round(T / shift)`` frames);
2. per frame: optional dither, DC offset removal, optional raw log energy, pre-emphasis
   ``x[n] - k x[n-1]`` (with ``x[-1] = x[0]``), window (povey = Hann^0.85, hanning, hamming,
   rectangular, blackman), zero padding to a power of two;
3. power (or magnitude) spectrum via ``rfft``;
4. triangular filters equally spaced on the Kaldi mel scale ``mel(f) = 1127 ln(1 + f / 700)``,
   triangular in the mel domain, no area normalisation; the Nyquist bin gets weight 0;
5. ``log(max(energy, eps))`` with ``eps`` the float32 machine epsilon (as torchaudio uses).

Matches torchaudio 2.11.0 (bit for bit in float32): see ``tests/test_fbank.py`` and
``tests/fixtures/kaldi_fbank_golden.npz``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["kaldi_fbank", "beats_fbank", "eat_fbank", "kaldi_mel_banks", "mel_scale"]

# torchaudio floors energies at torch.finfo(torch.float).eps before the log.
_EPSILON = torch.finfo(torch.float32).eps


def mel_scale(freq: torch.Tensor | float) -> torch.Tensor | float:
    """Kaldi's mel scale: ``1127 * ln(1 + f / 700)``, ``f`` in Hz."""
    if isinstance(freq, torch.Tensor):
        return 1127.0 * (1.0 + freq / 700.0).log()
    return 1127.0 * math.log(1.0 + freq / 700.0)


def kaldi_mel_banks(
    num_bins: int,
    padded_window_size: int,
    sample_frequency: float,
    low_freq: float,
    high_freq: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Kaldi's triangular mel filters as a (num_bins, padded_window_size // 2 + 1) matrix.

    Filter ``m`` rises linearly in mel from ``mel_low + m * delta`` to ``mel_low + (m + 1) * delta``
    and falls to ``mel_low + (m + 2) * delta``, ``delta = (mel_high - mel_low) / (num_bins + 1)``.
    FFT bin ``k`` sits at ``k * sample_frequency / padded_window_size`` Hz; the last (Nyquist) column
    is zero, as in Kaldi. ``high_freq <= 0`` means ``nyquist + high_freq``. The arithmetic runs in
    ``dtype`` (float32 reproduces torchaudio bit for bit).
    """
    nyquist = 0.5 * sample_frequency
    if high_freq <= 0.0:
        high_freq = high_freq + nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(
            f"kaldi_mel_banks: need 0 <= low_freq < high_freq <= nyquist, got low_freq={low_freq}, "
            f"high_freq={high_freq}, nyquist={nyquist}"
        )
    num_fft_bins = padded_window_size // 2
    fft_bin_width = sample_frequency / padded_window_size
    mel_low = mel_scale(float(low_freq))
    mel_high = mel_scale(float(high_freq))
    delta = (mel_high - mel_low) / (num_bins + 1)

    index = torch.arange(num_bins, dtype=dtype, device=device).unsqueeze(1)
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    mel = mel_scale(fft_bin_width * torch.arange(num_fft_bins, dtype=dtype, device=device)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1))  # Nyquist bin: weight 0


def _window(window_type: str, size: int, *, blackman_coeff: float, dtype, device) -> torch.Tensor:
    """Kaldi's symmetric windows (``periodic=False``), computed in ``dtype``."""
    if window_type == "povey":
        return torch.hann_window(size, periodic=False, dtype=dtype, device=device).pow(0.85)
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False, dtype=dtype, device=device)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=dtype, device=device)
    if window_type == "rectangular":
        return torch.ones(size, dtype=dtype, device=device)
    if window_type == "blackman":
        a = 2.0 * math.pi / (size - 1)
        n = torch.arange(size, dtype=dtype, device=device)
        return blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2.0 * a * n)
    raise ValueError(
        f"kaldi_fbank: unknown window_type {window_type!r}; expected one of "
        "'povey', 'hanning', 'hamming', 'rectangular', 'blackman'"
    )


def _frames(waves: torch.Tensor, window_size: int, window_shift: int, snip_edges: bool) -> torch.Tensor:
    """(B, T) -> (B, frames, window_size), Kaldi's framing."""
    num_samples = waves.shape[-1]
    if snip_edges:
        if num_samples < window_size:
            return waves.new_zeros((waves.shape[0], 0, window_size))
        return waves.unfold(-1, window_size, window_shift)
    # Kaldi without snip_edges: frame m is centred at m * shift + shift / 2; samples outside the
    # signal are mirrored (first `pad` samples reversed on the left, the reversed signal on the right).
    num_frames = (num_samples + window_shift // 2) // window_shift
    if num_frames == 0:
        return waves.new_zeros((waves.shape[0], 0, window_size))
    pad = window_size // 2 - window_shift // 2
    reversed_waves = torch.flip(waves, dims=[-1])
    if pad > 0:
        extended = torch.cat((reversed_waves[:, num_samples - pad :], waves, reversed_waves), dim=-1)
    else:
        extended = torch.cat((waves[:, -pad:], reversed_waves), dim=-1)
    return extended.unfold(-1, window_size, window_shift)[:, :num_frames]


def _log_energy(frames: torch.Tensor, energy_floor: float) -> torch.Tensor:
    energy = torch.clamp(frames.pow(2).sum(-1), min=_EPSILON).log()
    if energy_floor != 0.0:
        energy = torch.clamp(energy, min=math.log(energy_floor))
    return energy


def kaldi_fbank(
    waves: torch.Tensor,
    *,
    sample_frequency: float = 16000.0,
    num_mel_bins: int = 128,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    window_type: str = "povey",
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    dither: float = 0.0,
    htk_compat: bool = False,
    use_energy: bool = False,
    use_log_fbank: bool = True,
    use_power: bool = True,
    snip_edges: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    round_to_power_of_two: bool = True,
    energy_floor: float = 1.0,
    raw_energy: bool = True,
    blackman_coeff: float = 0.42,
) -> torch.Tensor:
    """Kaldi / ``torchaudio.compliance.kaldi.fbank`` log Mel filter bank energies.

    Parameters
    ----------
    waves : (batch, samples) or (samples,) float tensor, in whatever scale the model expects
        (Kaldi and BEATs use 16-bit integer scale, i.e. ``wave * 2**15``). Differentiable.
    sample_frequency : Hz. ``frame_length`` and ``frame_shift`` are in milliseconds.
    num_mel_bins, window_type, preemphasis_coefficient, remove_dc_offset, dither, htk_compat,
    use_energy, use_log_fbank, use_power, snip_edges, low_freq, high_freq (Hz, ``<= 0`` means
    relative to Nyquist), round_to_power_of_two, energy_floor, raw_energy, blackman_coeff :
        Kaldi's options, same meaning and defaults as torchaudio (except ``num_mel_bins=128``).
        ``dither`` > 0 adds Gaussian noise (non-deterministic unless the torch RNG is seeded).

    Returns
    -------
    (batch, frames, num_mel_bins [+1 with use_energy]) tensor, or (frames, bins) for 1-D input, in the
    input's floating dtype. With ``use_energy`` the log energy is the first column, or the last one
    when ``htk_compat``.
    """
    if waves.dim() not in (1, 2):
        raise ValueError(
            f"kaldi_fbank: waves must be (samples,) or (batch, samples), got shape {tuple(waves.shape)}"
        )
    squeeze = waves.dim() == 1
    x = waves.unsqueeze(0) if squeeze else waves
    out_dtype = x.dtype if x.is_floating_point() else torch.float32
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()  # half / bfloat16 / integers: compute in float32, return in the input's float dtype
    dtype, device = x.dtype, x.device

    window_size = int(sample_frequency * frame_length * 0.001)
    window_shift = int(sample_frequency * frame_shift * 0.001)
    if window_size < 2 or window_shift < 1:
        raise ValueError(
            f"kaldi_fbank: frame_length={frame_length} ms / frame_shift={frame_shift} ms give "
            f"{window_size} / {window_shift} samples at {sample_frequency} Hz"
        )
    padded_size = 1 << (window_size - 1).bit_length() if round_to_power_of_two else window_size

    # Energies of 16-bit-scale audio overflow float16: never let autocast touch this computation.
    with torch.autocast(device_type=device.type, enabled=False):
        frames = _frames(x, window_size, window_shift, snip_edges)  # (B, F, W)
        if frames.shape[1] == 0:  # shorter than one frame: no frames, as Kaldi
            n_out = num_mel_bins + int(use_energy)
            empty = x.new_zeros((x.shape[0], 0, n_out), dtype=out_dtype)
            return empty[0] if squeeze else empty
        if dither != 0.0:
            frames = frames + dither * torch.randn_like(frames)
        if remove_dc_offset:
            frames = frames - frames.mean(dim=-1, keepdim=True)
        if use_energy and raw_energy:
            energy = _log_energy(frames, energy_floor)
        if preemphasis_coefficient != 0.0:
            previous = torch.cat((frames[..., :1], frames[..., :-1]), dim=-1)
            frames = frames - preemphasis_coefficient * previous
        window = _window(window_type, window_size, blackman_coeff=blackman_coeff, dtype=dtype, device=device)
        frames = frames * window
        if padded_size > window_size:
            frames = torch.nn.functional.pad(frames, (0, padded_size - window_size))
        if use_energy and not raw_energy:
            energy = _log_energy(frames, energy_floor)

        spectrum = torch.fft.rfft(frames, dim=-1).abs()
        if use_power:
            spectrum = spectrum.pow(2)
        banks = kaldi_mel_banks(
            num_mel_bins, padded_size, sample_frequency, low_freq, high_freq, dtype=dtype, device=device
        )
        mel = torch.matmul(spectrum, banks.T)
        if use_log_fbank:
            mel = torch.clamp(mel, min=_EPSILON).log()
        if use_energy:
            energy = energy.unsqueeze(-1)
            mel = torch.cat((mel, energy) if htk_compat else (energy, mel), dim=-1)
    mel = mel.to(out_dtype)
    return mel[0] if squeeze else mel


def beats_fbank(waves: torch.Tensor) -> torch.Tensor:
    """BEATs' front end before its mean/std normalisation.

    waves: (batch, samples) or (samples,) float in [-1, 1] at 16 kHz. Scales by ``2**15`` and returns
    ``kaldi_fbank(num_mel_bins=128, frame_length=25, frame_shift=10)`` (povey window, Kaldi defaults),
    shape (batch, frames, 128), frames = 1 + (samples - 400) // 160.
    """
    return kaldi_fbank(
        waves * 32768.0, sample_frequency=16000.0, num_mel_bins=128, frame_length=25.0, frame_shift=10.0
    )


def eat_fbank(waves: torch.Tensor) -> torch.Tensor:
    """EAT's front end before its padding and normalisation.

    waves: (batch, samples) or (samples,) float in [-1, 1] at 16 kHz. Removes each clip's mean and
    returns ``kaldi_fbank(htk_compat=True, use_energy=False, window_type='hanning', num_mel_bins=128,
    dither=0, frame_shift=10)``, shape (batch, frames, 128).
    """
    centred = waves - waves.mean(dim=-1, keepdim=True)
    return kaldi_fbank(
        centred,
        sample_frequency=16000.0,
        htk_compat=True,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=128,
        dither=0.0,
        frame_shift=10.0,
    )
