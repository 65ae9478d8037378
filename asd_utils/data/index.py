"""Discover a DCASE Task 2 tree and index it as one DataFrame row per WAV clip.

Layouts accepted for ``root``::

    ROOT/dev_data/raw/<machine>/{train,test,supplemental}/*.wav   (and/or eval_data/raw/...)
    ROOT/dev_data/<machine>/...                                  (no raw/ level)
    ROOT/raw/<machine>/...
    ROOT/<machine>/{train,test,supplemental}/*.wav               (a folder of machine folders)

A machine folder is any folder holding a ``train``, ``test`` or ``supplemental`` sub-folder:
machine types and sections come from the disk, never from a list, so a machine type never seen
before works unchanged (the first-shot condition).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from asd_utils.data.attributes import build_frame, read_attributes_csv, read_ground_truth
from asd_utils.data.errors import DataError
from asd_utils.data.filenames import parse_filename

__all__ = ["INDEX_COLUMNS", "SPLITS", "discover", "machine_types", "select", "summary_counts"]

SPLITS = ("train", "test", "supplemental")

INDEX_COLUMNS = [
    "path", "file_name", "machine", "section", "split", "domain", "label", "is_anomaly",
    "clip_index", "attributes", "attribute_dict", "supplemental_kind", "dataset", "attributes_csv",
]
_OBJECT_COLUMNS = ("domain", "label", "supplemental_kind", "attribute_dict", "attributes_csv")

_EXPECTED_LAYOUT = (
    "expected ROOT/dev_data/raw/<machine>/train/*.wav (and/or eval_data/raw/...), "
    "or ROOT/<machine>/train/*.wav"
)


def _is_machine_dir(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".") and any((path / s).is_dir() for s in SPLITS)


def _machine_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _is_machine_dir(p)), key=lambda p: p.name)


def _guess_dataset(folder: Path) -> str:
    parts = [p.lower() for p in folder.resolve().parts]
    return "eval" if "eval_data" in parts else "dev"


def _dataset_folders(root: Path, dataset: str | None) -> list[tuple[str, Path]]:
    """(dataset, folder of machine folders) pairs found under root."""
    found: list[tuple[str, Path]] = []
    for name in ("dev", "eval"):
        top = root / f"{name}_data"
        if top.is_dir():
            for folder in (top / "raw", top):
                if _machine_dirs(folder):
                    found.append((dataset or name, folder))
                    break
    if found:
        return found
    for folder in (root / "raw", root):
        if _machine_dirs(folder):
            return [(dataset or _guess_dataset(folder), folder)]
    return []


def _wav_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    wavs = [p for p in folder.iterdir() if p.suffix.lower() == ".wav" and not p.name.startswith(".")]
    return sorted((p for p in wavs if p.is_file()), key=lambda p: p.name)


def _csv_attributes(machine_dir: Path) -> dict[str, dict[str, str]]:
    """file_name -> attribute dict from every ``attributes_*.csv`` in the machine folder."""
    out: dict[str, dict[str, str]] = {}
    for csv_path in sorted(machine_dir.glob("attributes_*.csv")):
        table = read_attributes_csv(csv_path)
        for name, attrs in zip(table["file_name"], table["attribute_dict"]):
            out.setdefault(name, attrs)
    return out


def _apply_ground_truth(records: list[dict], dirs: Sequence[Path]) -> None:
    """Fill label/domain of blinded rows from the evaluator's ground-truth CSVs, in place."""
    blinded = [r for r in records if r["split"] == "test" and (r["domain"] is None or r["label"] is None)]
    if not blinded or not dirs:
        return
    keys = sorted({(r["machine"], r["section"]) for r in blinded})
    truth: dict[tuple[str, str, str], dict] = {}
    for machine, section in keys:
        for d in dirs:
            table = read_ground_truth(d, machine, section)
            if len(table):
                for row in table.to_dict("records"):
                    truth.setdefault((machine, section, row["file_name"]), row)
                break
    for r in blinded:
        row = truth.get((r["machine"], r["section"], r["file_name"]))
        if row is None:
            continue
        if r["label"] is None and row["label"] is not None:
            r["label"] = row["label"]
            r["is_anomaly"] = row["is_anomaly"]
        if r["domain"] is None and row["domain"] is not None:
            r["domain"] = row["domain"]


def discover(
    root: str | Path,
    *,
    splits: Iterable[str] = SPLITS,
    dataset: str | None = None,
    ground_truth_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Index every WAV clip under a DCASE root (see the module docstring for layouts).

    Args:
        root: a DCASE root (holding ``dev_data``/``eval_data``) or a folder of machine folders.
        splits: which split folders to read, any of ``train``, ``test``, ``supplemental``.
        dataset: force the ``dataset`` column (``dev``/``eval``); by default it comes from the
            ``dev_data``/``eval_data`` folder, or is ``eval`` when the path contains
            ``eval_data``, else ``dev``.
        ground_truth_dir: folder holding the evaluator's ``ground_truth_data/`` and
            ``ground_truth_domain/`` folders; by default ``root`` (and its ``eval_data/`` and
            ``ground_truth/``) is searched. Labels and domains found there fill blinded rows.

    Returns:
        DataFrame, one row per WAV, columns :data:`INDEX_COLUMNS`: ``path`` (str),
        ``file_name`` (base name), ``machine``, ``section`` (two digits), ``split``, ``domain``
        (``source``/``target``/None), ``label`` (``normal``/``anomaly``/None), ``is_anomaly``
        (float 0/1, NaN unknown), ``clip_index`` (str), ``attributes`` (as in the name,
        ``noAttribute`` when hidden), ``attribute_dict`` (dict), ``supplemental_kind``
        (``clean``/``noise``/None), ``dataset`` (``dev``/``eval``) and ``attributes_csv``: the
        ``attributes_<ss>.csv`` dict of the clip only where it gives more than the name (else
        None); hidden attributes stay hidden in ``attributes``/``attribute_dict``.
        The split is the folder's. Rows are sorted by (machine, split, file_name, path).

    Raises:
        DataError: root missing; no machine folder under it; a machine without training clips
            (when ``train`` is among ``splits``); an unparseable file name; an unreadable
            attributes or ground-truth CSV; an unknown split name.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: data root does not exist; {_EXPECTED_LAYOUT}")
    if not root.is_dir():
        raise DataError(f"{root}: data root is not a folder; {_EXPECTED_LAYOUT}")
    splits = tuple(splits) if not isinstance(splits, str) else (splits,)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise DataError(f"splits {unknown}: expected a subset of {list(SPLITS)}")
    if dataset is not None and dataset not in ("dev", "eval"):
        raise DataError(f"dataset {dataset!r}: expected 'dev' or 'eval'")

    folders = _dataset_folders(root, dataset)
    if not folders:
        raise DataError(f"{root}: no machine folders (folders holding train/, test/ or supplemental/); "
                        f"{_EXPECTED_LAYOUT}")

    records: list[dict] = []
    for ds, folder in folders:
        for machine_dir in _machine_dirs(folder):
            machine = machine_dir.name
            if "train" in splits and not _wav_files(machine_dir / "train"):
                raise DataError(f"{machine_dir}: machine {machine!r} has no training clips; expected "
                                f"*.wav files in {machine_dir / 'train'}")
            csv_attrs = _csv_attributes(machine_dir)
            unknown_kind: list[str] = []
            for split in splits:
                for wav in _wav_files(machine_dir / split):
                    clip = parse_filename(wav, split=split)
                    from_csv = csv_attrs.get(wav.name)
                    extra = None
                    if from_csv and any(clip.attribute_dict.get(k) != v for k, v in from_csv.items()):
                        extra = dict(from_csv)
                    records.append({
                        "path": str(wav),
                        "file_name": wav.name,
                        "machine": machine,
                        "section": clip.section,
                        "split": split,
                        "domain": clip.domain,
                        "label": clip.label,
                        "is_anomaly": clip.is_anomaly,
                        "clip_index": clip.clip_index,
                        "attributes": clip.attributes,
                        "attribute_dict": dict(clip.attribute_dict),
                        "supplemental_kind": clip.supplemental_kind,
                        "dataset": ds,
                        "attributes_csv": extra,
                    })
                    if split == "supplemental" and clip.supplemental_kind is None:
                        unknown_kind.append(wav.name)
            if unknown_kind:
                warnings.warn(
                    f"{machine_dir / 'supplemental'}: {len(unknown_kind)} clip(s) whose names say neither "
                    f"clean/machine nor noise (e.g. {unknown_kind[0]}); their supplemental_kind is None",
                    UserWarning,
                    stacklevel=2,
                )

    if ground_truth_dir is not None:
        gt_dirs = [Path(ground_truth_dir)]
    else:
        gt_dirs = [root] + [folder for _, folder in folders] + [folder.parent for _, folder in folders]
    _apply_ground_truth(records, list(dict.fromkeys(gt_dirs)))

    records.sort(key=lambda r: (r["machine"], r["split"], r["file_name"], r["path"]))
    return build_frame(records, INDEX_COLUMNS, object_columns=_OBJECT_COLUMNS, float_columns=("is_anomaly",))


def machine_types(index: pd.DataFrame) -> list[str]:
    """Sorted machine types present in an index from :func:`discover`."""
    return sorted(pd.unique(index["machine"]).tolist())


def _as_set(value) -> set | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {value}
    return set(value)


def select(
    index: pd.DataFrame,
    machine: str | Sequence[str] | None = None,
    split: str | Sequence[str] | None = None,
    domain: str | Sequence[str] | None = None,
    section: str | int | Sequence[str | int] | None = None,
    *,
    dataset: str | Sequence[str] | None = None,
    label: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rows of ``index`` matching every filter given (a value or a list of values each).

    ``section`` accepts ``"00"`` or ``0``. Returns a copy with a fresh 0..n-1 index, row order
    kept. Raises DataError when a requested machine is not in the index (the message lists the
    machines present); the other filters may legitimately match nothing.
    """
    mask = pd.Series(True, index=index.index)
    machines = _as_set(machine)
    if machines is not None:
        missing = sorted(machines - set(index["machine"]))
        if missing:
            raise DataError(f"machine(s) {missing} not in the index; expected one of {machine_types(index)}")
        mask &= index["machine"].isin(machines)
    if section is not None:
        values = [section] if isinstance(section, str | int) else list(section)
        try:
            sections = {f"{int(s):02d}" for s in values}
        except ValueError:
            raise DataError(f"section {section!r}: expected section numbers such as '00' or 0") from None
        mask &= index["section"].isin(sections)
    for column, value in (("split", split), ("domain", domain), ("dataset", dataset), ("label", label)):
        wanted = _as_set(value)
        if wanted is not None:
            mask &= index[column].isin(wanted)
    return index[mask].reset_index(drop=True)


def summary_counts(index: pd.DataFrame) -> pd.DataFrame:
    """Clip counts per machine, split, domain and label.

    Returns a DataFrame with columns ``machine, split, domain, label, n_clips`` (int), sorted;
    an unknown domain or label (blinded, supplemental) is shown as ``"unknown"``.
    """
    table = index[["machine", "split", "domain", "label"]].copy()
    for col in ("domain", "label"):
        table[col] = [v if isinstance(v, str) else "unknown" for v in table[col]]
    counts = table.groupby(["machine", "split", "domain", "label"], sort=True).size()
    out = counts.rename("n_clips").reset_index()
    out["n_clips"] = out["n_clips"].astype("int64")
    return out
