"""Convert a DCASE-layout tree to mono audio at one sample rate, once, into a new folder.

The loaders refuse multichannel files and other sample rates (:func:`asd_utils.data.load_audio`);
this is the explicit way to use such data:

    python -m asd_utils.data.convert SOURCE_ROOT TARGET_ROOT [--sample-rate 16000]

Every file under ``SOURCE_ROOT`` lands at the same relative path under ``TARGET_ROOT``. A WAV is
downmixed to the mean of its channels and resampled (librosa ``soxr_hq``) when it needs it, and
written with its own sample format (a PCM file whose converted samples would clip is written as
32-bit float instead). WAVs that already fit, and every other file (attribute and ground-truth
CSVs, READMEs), are copied unchanged. Each file is written atomically, so an interrupted run
leaves whole files only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from asd_utils.data.audio import load_audio
from asd_utils.data.errors import DataError
from asd_utils.storage.atomic import atomic_path

__all__ = ["convert_tree"]

_PCM_SUBTYPES = {"PCM_U8", "PCM_S8", "PCM_16", "PCM_24", "PCM_32"}


def _convert_wav(source: Path, target: Path, sample_rate: int) -> str:
    """Write ``source`` as mono at ``sample_rate`` to ``target``; returns what was done."""

    try:
        info = sf.info(str(source))
    except Exception as exc:  # libsndfile raises several types for undecodable input
        raise DataError(f"{source}: cannot decode the audio ({exc}); expected a readable WAV file") from exc
    if info.channels == 1 and int(info.samplerate) == int(sample_rate):
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        return "copied"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the resampling notice: this is the conversion asked for
        wave = load_audio(source, sample_rate=sample_rate, convert=True)
    subtype = info.subtype
    if subtype in _PCM_SUBTYPES and float(np.max(np.abs(wave))) > 1.0:
        subtype = "FLOAT"
    with atomic_path(target) as tmp:
        sf.write(str(tmp), wave, int(sample_rate), subtype=subtype, format="WAV")
    return "converted"


def convert_tree(source: str | Path, target: str | Path, *, sample_rate: int = 16000,
                 progress: bool = True) -> dict[str, int]:
    """Convert every WAV under ``source`` to mono ``sample_rate`` Hz under ``target``.

    target must not exist or be empty, and must not lie inside ``source``. Returns the counts
    ``{"converted": n, "copied": n}`` (copied: WAVs that already fit and non-WAV files).
    Raises DataError naming the folder or the first file that cannot be read.
    """
    source, target = Path(source).resolve(), Path(target).resolve()
    if not source.is_dir():
        raise DataError(f"{source}: folder not found; expected a DCASE-layout root to convert")
    if target == source or source in target.parents:
        raise DataError(f"{target}: lies inside the source {source}; expected a separate output folder")
    if target.exists() and any(target.iterdir()):
        raise DataError(f"{target}: folder is not empty; expected a new or empty output folder")
    files = sorted(p for p in source.rglob("*") if p.is_file())
    counts: Counter = Counter(converted=0, copied=0)
    bar = None
    if progress:

        bar = tqdm(total=len(files), desc="converting", unit="file")
    try:
        for path in files:
            out = target / path.relative_to(source)
            if path.suffix.lower() == ".wav":
                counts[_convert_wav(path, out, sample_rate)] += 1
            else:
                with atomic_path(out) as tmp:
                    shutil.copyfile(path, tmp)
                counts["copied"] += 1
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return dict(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asd_utils.data.convert",
                                     description="Convert a DCASE-layout tree to mono audio at one sample rate.")
    parser.add_argument("source", type=Path, help="the DCASE-layout root to read")
    parser.add_argument("target", type=Path, help="a new or empty folder to write the converted tree to")
    parser.add_argument("--sample-rate", type=int, default=16000, help="output rate in Hz (default 16000)")
    args = parser.parse_args(argv)
    try:
        counts = convert_tree(args.source, args.target, sample_rate=args.sample_rate)
    except DataError as exc:
        print(f"convert: {exc}", file=sys.stderr)
        return 2
    print(f"{args.target}: {counts['converted']} WAV file(s) converted to mono {args.sample_rate} Hz, "
          f"{counts['copied']} file(s) copied unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
