"""Read the DCASE attribute CSVs and the official evaluator's ground-truth CSVs.

``attributes_<ss>.csv`` (one per machine folder and section) has a header
``file_name,d1p,d1v,d2p,d2v,...``: the clip's name, then parameter/value pairs. Its forms vary
between years and machine types: the name with or without the ``<machine>/<split>/`` prefix or
the ``.wav`` suffix, with or without attribute columns, a UTF-8 BOM, trailing empty columns.

The official evaluator (``nttcslab/dcase202x_task2_evaluator``) keeps the blinded evaluation
ground truth in three folders, one headerless CSV per machine and section::

    ground_truth_data/ground_truth_<machine>_section_<ss>_test.csv        file_name,0|1 (1 = anomaly)
    ground_truth_domain/ground_truth_<machine>_section_<ss>_test.csv      file_name,0|1 (1 = target)
    ground_truth_attributes/ground_truth_<machine>_section_<ss>_test.csv  file_name,<full dev-style name>
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pandas as pd

from asd_utils.data.errors import DataError
from asd_utils.data.filenames import parse_filename

__all__ = ["read_attributes_csv", "read_ground_truth", "ground_truth_path", "normalise_clip_name"]

_HEADER_NAMES = {"file_name", "filename", "file", "name", "path", "file_path"}
_PAIR_RE = re.compile(r"^d(\d+)([pv])$", re.IGNORECASE)
GROUND_TRUTH_FOLDERS = ("ground_truth_data", "ground_truth_domain", "ground_truth_attributes")


def build_frame(
    records: list[dict], columns: list[str], *, object_columns=(), float_columns=()
) -> pd.DataFrame:
    """DataFrame from row dicts with ``object_columns`` kept as object (None stays None, not NaN,
    which pandas' string inference would otherwise do) and ``float_columns`` as float64."""
    data = {}
    for col in columns:
        values = [r.get(col) for r in records]
        if col in object_columns:
            data[col] = pd.Series(values, dtype=object)
        elif col in float_columns:
            data[col] = pd.Series(values, dtype="float64")
        else:
            data[col] = pd.Series(values, dtype=object if not values else None)
    return pd.DataFrame(data, columns=columns)


def normalise_clip_name(name: str) -> str:
    """Base name of a clip as written in a CSV: strip any folder prefix, add ``.wav`` if absent.

    ``"fan/train/section_00_source_train_normal_0000_m-n_W.wav"`` and
    ``"section_00_source_train_normal_0000_m-n_W"`` both give
    ``"section_00_source_train_normal_0000_m-n_W.wav"``.
    """
    base = str(name).strip().replace("\\", "/").rsplit("/", 1)[-1]
    if base and not base.lower().endswith(".wav"):
        base += ".wav"
    return base


def _read_rows(path: Path, what: str) -> list[list[str]]:
    """All non-blank rows of a CSV, cells stripped; DataError when the file cannot be read."""
    if not path.is_file():
        raise DataError(f"{path}: {what} not found; expected an existing CSV file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = [[cell.strip() for cell in row] for row in csv.reader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc}); expected a UTF-8 CSV file") from exc
    return [row for row in rows if any(cell for cell in row)]


def read_attributes_csv(path: str | Path) -> pd.DataFrame:
    """Read one ``attributes_<ss>.csv`` defensively.

    Args:
        path: the CSV file.

    Returns:
        DataFrame, one row per clip listed, columns ``file_name`` (base name with ``.wav``),
        ``raw_file_name`` (as written in the CSV) and ``attribute_dict`` (``{parameter: value}``;
        pairs ``d<k>p``/``d<k>v`` matched by number, or consecutive columns when the header does
        not name them so; pairs with an empty parameter are dropped, so a CSV without attribute
        columns gives empty dicts). A header-only CSV gives zero rows. Duplicate names keep the
        first row.

    Raises:
        DataError: the file is missing, not decodable as UTF-8 CSV, empty, or its first column
            does not hold file names (neither a ``file_name`` header nor ``*.wav`` entries).
    """
    path = Path(path)
    rows = _read_rows(path, "attributes CSV")
    if not rows:
        raise DataError(f"{path}: the attributes CSV is empty; expected a header 'file_name,d1p,d1v,...'")
    first = rows[0]
    first_cell = first[0].lower() if first else ""
    if first_cell in _HEADER_NAMES:
        header, body = first, rows[1:]
    elif first_cell.endswith(".wav") or normalise_clip_name(first_cell).startswith("section_"):
        header, body = [], rows
    else:
        raise DataError(
            f"{path}: cannot read the attributes CSV: first column header {first[0]!r}; expected "
            "'file_name' followed by d1p,d1v,... columns (or rows starting with the clip name)"
        )

    width = max(len(r) for r in rows)
    pairs: list[tuple[int, int]] = []
    numbered: dict[str, dict[str, int]] = {}
    for col, name in enumerate(header[1:], start=1):
        m = _PAIR_RE.match(name)
        if m:
            numbered.setdefault(m.group(1), {})[m.group(2).lower()] = col
    if numbered:
        for key in sorted(numbered, key=int):
            cols = numbered[key]
            if "p" in cols and "v" in cols:
                pairs.append((cols["p"], cols["v"]))
    else:
        pairs = [(c, c + 1) for c in range(1, width - 1, 2)]

    records = []
    seen: set[str] = set()
    for row in body:
        raw = row[0]
        file_name = normalise_clip_name(raw)
        if not file_name or file_name in seen:
            continue
        seen.add(file_name)
        attrs: dict[str, str] = {}
        for p_col, v_col in pairs:
            param = row[p_col] if p_col < len(row) else ""
            value = row[v_col] if v_col < len(row) else ""
            if param and param.lower() not in ("nan", "none", "noattribute"):
                attrs.setdefault(param, value)
        records.append({"file_name": file_name, "raw_file_name": raw, "attribute_dict": attrs})
    return build_frame(records, ["file_name", "raw_file_name", "attribute_dict"],
                       object_columns=("attribute_dict",))


def _section_str(section: str | int) -> str:
    text = str(section).strip()
    if not text.isdigit():
        raise DataError(f"section {section!r}: expected a section number such as '00' or 0")
    return f"{int(text):02d}"


def _candidate_dirs(root_or_dir: Path) -> list[Path]:
    """Folders that may hold the ground_truth_* folders, nearest first."""
    out = [root_or_dir, root_or_dir / "eval_data", root_or_dir / "ground_truth",
           root_or_dir / "eval_data" / "ground_truth"]
    return [d for d in out if any((d / sub).is_dir() for sub in GROUND_TRUTH_FOLDERS)]


def ground_truth_path(root_or_dir: str | Path, machine: str, section: str | int, kind: str) -> Path | None:
    """Path of one evaluator ground-truth CSV, or None when absent.

    ``kind`` is ``"data"`` (labels), ``"domain"`` or ``"attributes"``; the file looked for is
    ``<dir>/ground_truth_<kind>/ground_truth_<machine>_section_<ss>_test.csv`` with ``<dir>`` the
    given folder, its ``eval_data`` or ``ground_truth`` sub-folder.
    """
    folder = f"ground_truth_{kind}"
    if folder not in GROUND_TRUTH_FOLDERS:
        raise DataError(f"ground-truth kind {kind!r}: expected 'data', 'domain' or 'attributes'")
    name = f"ground_truth_{machine}_section_{_section_str(section)}_test.csv"
    for d in _candidate_dirs(Path(root_or_dir)):
        candidate = d / folder / name
        if candidate.is_file():
            return candidate
    return None


def _read_binary_csv(path: Path, what: str) -> dict[str, int]:
    rows = _read_rows(path, what)
    out: dict[str, int] = {}
    for i, row in enumerate(rows):
        if len(row) < 2:
            raise DataError(f"{path}: row {i + 1} has {len(row)} column(s); expected 'file_name,0|1'")
        try:
            value = float(row[1])
        except ValueError:
            if i == 0:  # tolerate a header row
                continue
            raise DataError(f"{path}: row {i + 1} value {row[1]!r}; expected 0 or 1") from None
        if math.isnan(value) or value not in (0.0, 1.0):
            raise DataError(f"{path}: row {i + 1} value {row[1]!r}; expected 0 or 1")
        out[normalise_clip_name(row[0])] = int(value)
    return out


def read_ground_truth(root_or_dir: str | Path, machine: str, section: str | int) -> pd.DataFrame:
    """Ground truth of one blinded evaluation machine/section from the evaluator's CSVs.

    Args:
        root_or_dir: a folder holding ``ground_truth_data/`` and/or ``ground_truth_domain/`` (for
            example a clone of the official evaluator), or a DCASE root whose ``eval_data/`` or
            ``ground_truth/`` holds them.
        machine: machine type, e.g. ``"AutoTrash"``.
        section: section, ``"00"`` or ``0``.

    Returns:
        DataFrame with columns ``file_name`` (blinded base name), ``label``
        (``normal``/``anomaly``/None), ``is_anomaly`` (float 0/1, NaN unknown) and ``domain``
        (``source``/``target``/None), sorted by file name; zero rows when no CSV is found.
        ``ground_truth_attributes`` (blinded name -> full dev-style name) fills a label or domain
        that the other two CSVs lack; attributes themselves are not returned.

    Raises:
        DataError: a CSV exists but cannot be read or holds values other than 0/1.
    """
    labels: dict[str, int] = {}
    domains: dict[str, int] = {}
    path = ground_truth_path(root_or_dir, machine, section, "data")
    if path is not None:
        labels = _read_binary_csv(path, "ground-truth label CSV")
    path = ground_truth_path(root_or_dir, machine, section, "domain")
    if path is not None:
        domains = _read_binary_csv(path, "ground-truth domain CSV")
    path = ground_truth_path(root_or_dir, machine, section, "attributes")
    if path is not None:
        for i, row in enumerate(_read_rows(path, "ground-truth attributes CSV")):
            if len(row) < 2 or not row[1]:
                continue
            try:
                clip = parse_filename(normalise_clip_name(row[1]))
            except DataError:
                if i == 0:  # header row
                    continue
                raise DataError(
                    f"{path}: row {i + 1} full name {row[1]!r} cannot be parsed; expected a "
                    "'section_<ss>_<source|target>_test_<normal|anomaly>_<nnnn>_<attributes>' name"
                ) from None
            name = normalise_clip_name(row[0])
            if clip.label is not None:
                labels.setdefault(name, int(clip.label == "anomaly"))
            if clip.domain is not None:
                domains.setdefault(name, int(clip.domain == "target"))

    names = sorted(set(labels) | set(domains))
    records = []
    for name in names:
        lab = labels.get(name)
        dom = domains.get(name)
        records.append({
            "file_name": name,
            "label": None if lab is None else ("anomaly" if lab else "normal"),
            "is_anomaly": float("nan") if lab is None else float(lab),
            "domain": None if dom is None else ("target" if dom else "source"),
        })
    return build_frame(records, ["file_name", "label", "is_anomaly", "domain"],
                       object_columns=("label", "domain"), float_columns=("is_anomaly",))
