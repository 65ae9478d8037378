"""Load DCASE clips (mono, or one channel setting of a two-channel 2026 clip) as float32 waveforms."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from asd_utils.data import layout
from asd_utils.data.channels import from_two_channels
from asd_utils.data.errors import DataError

__all__ = ["load_audio", "fix_length", "load_batch", "far_channel_noise", "FIX_LENGTH_MODES"]

FIX_LENGTH_MODES = ("tile", "pad", "crop")


def fix_length(wave: np.ndarray, n_samples: int, mode: str = "tile") -> np.ndarray:
    """Bring a waveform to exactly ``n_samples`` samples.

    Args:
        wave: (samples,) waveform (any float dtype; the dtype is kept).
        n_samples: target length in samples (> 0).
        mode: what to do when ``wave`` is shorter: ``"tile"`` repeats it from the start,
            ``"pad"`` appends zeros, ``"crop"`` refuses (DataError). A longer wave is always
            cropped to its first ``n_samples`` samples.

    Returns:
        (n_samples,) array, a copy.
    """
    if mode not in FIX_LENGTH_MODES:
        raise ValueError(f"mode {mode!r}: expected one of {FIX_LENGTH_MODES}")
    n_samples = int(n_samples)
    if n_samples <= 0:
        raise ValueError(f"n_samples {n_samples}: expected a positive number of samples")
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"wave of shape {wave.shape}: expected a 1-D (samples,) array")
    length = wave.shape[0]
    if length >= n_samples:
        return wave[:n_samples].copy()
    if length == 0:
        raise DataError(f"empty waveform (0 samples): cannot {mode} it to {n_samples} samples")
    if mode == "crop":
        raise DataError(f"waveform of {length} samples is shorter than {n_samples}; mode 'crop' "
                        "expected at least n_samples (use mode 'tile' or 'pad')")
    if mode == "pad":
        out = np.zeros(n_samples, dtype=wave.dtype)
        out[:length] = wave
        return out
    reps = -(-n_samples // length)
    return np.tile(wave, reps)[:n_samples].copy()


def load_audio(
    path: str | Path,
    *,
    sample_rate: int = 16000,
    n_samples: int | None = None,
    mode: str = "tile",
    convert: bool = False,
    channel: str | None = None,
) -> np.ndarray:
    """Read one mono audio file at ``sample_rate`` (a two-channel clip of a DCASE 2026 root: the
    waveform its channel setting gives).

    Args:
        path: a WAV (or any format libsndfile reads).
        sample_rate: the rate in Hz the file must have (DCASE Task 2 clips: 16 kHz mono).
        n_samples: when given, the output is brought to exactly this many samples with
            :func:`fix_length` (``mode``: ``tile``, ``pad`` or ``crop``).
        convert: accept a multichannel file or another rate: downmix to the mean of the
            channels and resample with librosa (``soxr_hq``); a ``UserWarning`` names the file
            and its original rate. Off by default: such a file is an error, since it is more
            often the wrong folder than a wish to convert; ``python -m asd_utils.data.convert``
            converts a whole tree once.
        channel: for a clip of a DCASE 2026 root (:mod:`asd_utils.data.layout`), which waveform
            its two channels give (:data:`asd_utils.data.channels.CHANNELS`); None: the run's
            setting (``$ASD_CHANNEL``, default ``near``). Mono clips of other roots ignore it.

    Returns:
        (samples,) float32 at ``sample_rate``.

    Raises:
        DataError: the file is missing, cannot be decoded, holds 0 samples or non-finite
            values, or (without ``convert``) has more than one channel (outside a 2026 root),
            another rate, or, in a 2026 root, not exactly two channels; the message names the
            file and what was expected.
    """

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: audio file not found; expected an existing WAV file")
    try:
        data, orig_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types for undecodable input
        raise DataError(f"{path}: cannot decode the audio ({exc}); expected a readable WAV file") from exc
    if data.shape[0] == 0:
        raise DataError(f"{path}: empty audio (0 samples); expected a non-empty WAV file")
    two_channel_root = layout.two_channel_root(path)
    if two_channel_root is not None:
        if data.shape[1] != 2:
            raise DataError(f"{path}: {data.shape[1]} channel(s); expected two (channel 0 near, channel 1 far) "
                            f"in a DCASE 2026 root ({two_channel_root})")
        if not convert and int(orig_sr) != int(sample_rate):
            raise DataError(f"{path}: {orig_sr} Hz; expected {sample_rate} Hz (DCASE 2026 clips are 16 kHz, "
                            "two channels); pass convert=True to resample at every load")
        data = from_two_channels(data, channel, name=str(path))[:, None]
    elif not convert and (data.shape[1] != 1 or int(orig_sr) != int(sample_rate)):
        raise DataError(
            f"{path}: {data.shape[1]} channel(s) at {orig_sr} Hz; expected mono audio at {sample_rate} Hz "
            f"(DCASE 2020-2025 Task 2 clips are 16 kHz mono; a DCASE 2026 two-channel root is recognised by "
            f"a folder named *dcase2026* or the marker file {layout.LAYOUT_MARKER} above its machine folders). "
            f"Convert the tree once with "
            f"`python -m asd_utils.data.convert SOURCE_ROOT TARGET_ROOT`, or pass convert=True to "
            "load_audio/load_batch to downmix and resample at every load"
        )
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wave)):
        raise DataError(f"{path}: audio holds NaN or infinite samples; expected finite samples")
    if int(orig_sr) != int(sample_rate):

        warnings.warn(
            f"{path}: sample rate {orig_sr} Hz, resampling to {sample_rate} Hz",
            UserWarning,
            stacklevel=2,
        )
        wave = librosa.resample(wave, orig_sr=int(orig_sr), target_sr=int(sample_rate), res_type="soxr_hq")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if n_samples is not None:
        try:
            wave = fix_length(wave, n_samples, mode)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from exc
    return wave


def load_batch(
    paths: Sequence[str | Path],
    *,
    sample_rate: int = 16000,
    n_samples: int,
    mode: str = "tile",
    progress: bool = False,
    num_workers: int = 0,
    convert: bool = False,
    channel: str | None = None,
) -> np.ndarray:
    """Load many clips into one array, in the order given.

    Args:
        paths: clip paths.
        sample_rate: the rate in Hz every clip must have (see :func:`load_audio`).
        n_samples: samples per clip; each clip goes through :func:`fix_length` with ``mode``.
        progress: show a tqdm progress bar.
        num_workers: threads reading in parallel (0 or 1: read in this thread). The row order
            is always the order of ``paths``.
        convert: downmix and resample clips of another layout (see :func:`load_audio`).
        channel: what a two-channel DCASE 2026 clip gives (see :func:`load_audio`); None: the
            run's setting.

    Returns:
        (N, n_samples) float32, N = len(paths).

    Raises:
        DataError: from :func:`load_audio`, naming the failing file.
    """
    if n_samples is None or int(n_samples) <= 0:
        raise ValueError(f"n_samples {n_samples!r}: expected a positive number of samples")
    if mode not in FIX_LENGTH_MODES:
        raise ValueError(f"mode {mode!r}: expected one of {FIX_LENGTH_MODES}")
    paths = list(paths)
    out = np.empty((len(paths), int(n_samples)), dtype=np.float32)
    if not paths:
        return out

    def _load(p):
        return load_audio(p, sample_rate=sample_rate, n_samples=n_samples, mode=mode, convert=convert,
                          channel=channel)

    bar = None
    if progress:

        bar = tqdm(total=len(paths), desc="loading audio", unit="clip")
    try:
        if num_workers and num_workers > 1:
            with ThreadPoolExecutor(max_workers=int(num_workers)) as pool:
                for i, wave in enumerate(pool.map(_load, paths)):
                    out[i] = wave
                    if bar is not None:
                        bar.update(1)
        else:
            for i, p in enumerate(paths):
                out[i] = _load(p)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out


def far_channel_noise(paths, *, n_samples: int, sample_rate: int = 16000) -> np.ndarray:
    """The far channels of two-channel clips as noise sources, whatever the run's setting.

    For report 002's supplemental mixing on DCASE 2026 data, which has no noise-only supplemental
    clips: the far microphone is mostly factory, so its channel of the training clips can stand in
    for them (e.g. ``asd_utils.training.noise_mix.NoiseMixer(far_channel_noise(paths, n_samples=T))``).
    It still holds some machine sound, attenuated: mixing it in also adds a faint delayed copy.

    Returns ``(N, n_samples)`` float32; DataError naming a clip that is not in a 2026 root.
    """

    paths = [str(p) for p in paths]
    mono = [p for p in paths if not layout.is_two_channel_layout(p)]
    if mono:
        raise DataError(f"{mono[0]}: not in a two-channel DCASE 2026 root; expected clips whose far channel can "
                        f"serve as noise ({len(mono)} such clip(s))")
    return load_batch(paths, sample_rate=sample_rate, n_samples=n_samples, channel="far")
