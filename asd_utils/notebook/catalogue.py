"""What every system of every notebook is made of, in one place.

The comparison notebook (08) shows, for each system that wrote results, its front end (input
features, backbone, how the backbone is adapted), training objective, data, back end and
ensemble, and which row of which report's table it reproduces. Those facts live here, not in the
notebook, so that one correction reaches every table. The facts are data: ``catalogue.yaml`` next to
this module (shipped as package data); this module reads it once, checks it and answers lookups.

Entries are keyed by the notebook's two-digit number and the system name the notebook records
(``RunContext.record``). A system that has no entry (a new notebook, a new variant) still appears
in every table, marked :data:`NOT_CATALOGUED`: nothing needs to change here for a new notebook's
results to be picked up.

``reported_as`` pairs a system with ``(report id, system name as the report's table prints it)``;
the report id is the three-digit prefix of its ``papers/<id>_*.csv`` tables. Report 000 and 004
print the official autoencoder baseline, so notebook 01's systems map to rows of both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd
import yaml

__all__ = [
    "ADAPTATIONS",
    "CATALOGUE",
    "CATALOGUE_FILE",
    "NOT_CATALOGUED",
    "SystemCard",
    "catalogue_table",
    "load_catalogue",
    "lookup",
    "notebook_number",
    "reported_mapping",
]

NOT_CATALOGUED = "not catalogued"
ADAPTATIONS = ("trained from scratch", "frozen", "LoRA", "full fine-tuning", "no training", "ensemble")


@dataclass(frozen=True)
class SystemCard:
    """One system of one notebook.

    notebook: two-digit notebook number (``"02"``); system: the name in the results CSV;
    report: report id (``"000"`` ... ``"004"``, ``"baseline"`` for the official baseline);
    features: the input representation; backbone: the network (or ``-``); adaptation: one of
    :data:`ADAPTATIONS`; objective: the training objective; data: the training data used;
    back_end: how embeddings become anomaly scores; ensemble: what is combined (``-`` if nothing);
    reported_as: ``((report id, reported system name), ...)``; status: ``"landed"`` when written from
    the notebook's code, ``"from the plan"`` when written from the plan before the notebook landed.
    """

    notebook: str
    system: str
    report: str
    features: str
    backbone: str
    adaptation: str
    objective: str
    data: str
    back_end: str
    ensemble: str = "-"
    reported_as: tuple[tuple[str, str], ...] = ()
    status: str = "landed"

    def __post_init__(self):
        if self.adaptation not in ADAPTATIONS:
            raise ValueError(f"{self.notebook} {self.system}: adaptation {self.adaptation!r} not in {ADAPTATIONS}")


CATALOGUE_FILE = Path(__file__).with_name("catalogue.yaml")
_FIELDS = {f.name for f in fields(SystemCard)}


def load_catalogue(path: str | Path = CATALOGUE_FILE) -> tuple[SystemCard, ...]:
    """The cards of a catalogue file (``catalogue.yaml``: ``groups`` of shared fields, ``systems``).

    Each system starts from the fields of its ``group`` (if any) and overrides them with its own;
    ``reported_as`` pairs become tuples. Raises ValueError naming the file for an unknown group or
    field, a missing field, an adaptation not in :data:`ADAPTATIONS` or a (notebook, system) twice.
    """
    path = Path(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    groups = raw.get("groups") or {}
    cards = []
    for entry in raw.get("systems") or []:
        entry = dict(entry)
        group = entry.pop("group", None)
        if group is not None and group not in groups:
            raise ValueError(f"{path}: system {entry.get('system')!r} names unknown group {group!r}")
        merged = {**(groups[group] if group is not None else {}), **entry}
        unknown = set(merged) - _FIELDS
        if unknown:
            raise ValueError(f"{path}: system {merged.get('system')!r} has unknown fields {sorted(unknown)}")
        merged["reported_as"] = tuple(tuple(str(x) for x in pair) for pair in merged.get("reported_as") or ())
        try:
            cards.append(SystemCard(**merged))
        except TypeError as error:  # a required field missing
            raise ValueError(f"{path}: system {merged.get('system')!r}: {error}") from None
    keys = [(card.notebook, card.system) for card in cards]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValueError(f"{path}: (notebook, system) listed more than once: {twice}")
    return tuple(cards)


CATALOGUE: tuple[SystemCard, ...] = load_catalogue()

_BY_KEY = {(card.notebook, card.system): card for card in CATALOGUE}

DESCRIPTION_COLUMNS = ("features", "backbone", "adaptation", "objective", "data", "back_end", "ensemble")


def notebook_number(notebook: str) -> str:
    """``"02_gisp_heu_beats_statistical_weighting"`` or ``"02"`` -> ``"02"`` (the key of entries)."""
    head = str(notebook).split("_", 1)[0]
    return head if head.isdigit() else str(notebook)


def lookup(notebook: str, system: str) -> SystemCard | None:
    """The entry of ``system`` in ``notebook`` (full stem or number), or None if not catalogued."""
    return _BY_KEY.get((notebook_number(notebook), str(system)))


def catalogue_table(systems: Iterable[tuple[str, str]] | pd.DataFrame | None = None) -> pd.DataFrame:
    """What each system is made of: one row per (notebook, system).

    systems: ``(notebook, system)`` pairs, or a DataFrame with those columns (e.g. the collected
    results); None lists the whole catalogue. Systems without an entry get :data:`NOT_CATALOGUED`
    in every description column, so they are never silently dropped.

    Columns: ``notebook, system, report, features, backbone, adaptation, objective, data,
    back_end, ensemble, reported_as`` (``"000: System-1; ..."``), ``status``.
    """
    if systems is None:
        pairs = [(card.notebook, card.system) for card in CATALOGUE]
    elif isinstance(systems, pd.DataFrame):
        pairs = list(dict.fromkeys(zip(systems["notebook"].astype(str), systems["system"].astype(str))))
    else:
        pairs = list(dict.fromkeys((str(n), str(s)) for n, s in systems))
    rows = []
    for notebook, system in pairs:
        card = lookup(notebook, system)
        if card is None:
            rows.append({"notebook": notebook, "system": system, "report": NOT_CATALOGUED,
                         **{c: NOT_CATALOGUED for c in DESCRIPTION_COLUMNS}, "reported_as": "",
                         "status": NOT_CATALOGUED})
            continue
        entry = asdict(card)
        entry["notebook"] = notebook
        entry["reported_as"] = "; ".join(f"{r}: {name}" for r, name in card.reported_as)
        rows.append(entry)
    columns = [f.name for f in fields(SystemCard)]
    return pd.DataFrame(rows, columns=columns)


def reported_mapping(systems: Iterable[tuple[str, str]] | pd.DataFrame | None = None) -> pd.DataFrame:
    """``notebook, system, report, reported_system``: one row per reported table row a system
    reproduces (a system may reproduce rows of several reports; most reproduce one)."""
    table = catalogue_table(systems)
    rows = []
    for notebook, system in zip(table["notebook"], table["system"]):
        card = lookup(notebook, system)
        for report, name in (card.reported_as if card else ()):
            rows.append({"notebook": notebook, "system": system, "report": report, "reported_system": name})
    return pd.DataFrame(rows, columns=["notebook", "system", "report", "reported_system"])
