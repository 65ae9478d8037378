"""DCASE Task 2 data: layout discovery, file-name parsing, attribute CSVs, audio loading.

``discover(root)`` indexes a DCASE tree as a DataFrame (one row per WAV; columns in
CONTRIBUTING.md); ``load_audio``/``load_batch`` read clips as float32 at 16 kHz. A two-channel
DCASE 2026 root (:mod:`.layout`) gives the waveform of the run's channel setting (:mod:`.channels`:
``near`` by default, ``far``, ``mean``, ``noise_aware``). Bad input
raises :class:`DataError` (a ``ValueError``) naming the file or folder and what was expected.
"""

from asd_utils.data.attributes import ground_truth_path, normalise_clip_name, read_attributes_csv, read_ground_truth
from asd_utils.data.audio import FIX_LENGTH_MODES, fix_length, load_audio, load_batch
from asd_utils.data.channels import CHANNEL_ENV, CHANNELS, channel_note, current_channel, use_channel
from asd_utils.data.errors import DataError
from asd_utils.data.filenames import ClipName, parse_attributes, parse_filename
from asd_utils.data.index import INDEX_COLUMNS, SPLITS, discover, machine_types, select, summary_counts
from asd_utils.data.layout import LAYOUT_MARKER, is_two_channel_layout, two_channel_root

__all__ = [
    "DataError",
    "ClipName",
    "parse_filename",
    "parse_attributes",
    "read_attributes_csv",
    "read_ground_truth",
    "ground_truth_path",
    "normalise_clip_name",
    "discover",
    "machine_types",
    "select",
    "summary_counts",
    "INDEX_COLUMNS",
    "SPLITS",
    "load_audio",
    "load_batch",
    "fix_length",
    "FIX_LENGTH_MODES",
    "CHANNELS",
    "CHANNEL_ENV",
    "current_channel",
    "use_channel",
    "channel_note",
    "LAYOUT_MARKER",
    "is_two_channel_layout",
    "two_channel_root",
]
