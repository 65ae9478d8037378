"""Parse DCASE Task 2 (2022-2025) clip file names.

Shapes handled (``<ss>`` two-digit section, ``<nnnn>`` clip index of digits, attributes optional)::

    section_<ss>_<source|target>_<train|test>_<normal|anomaly>_<nnnn>[_<attributes>].wav
    section_<ss>_<nnnn>.wav                      blinded evaluation test clip
    section_<ss>_test_<nnnn>.wav                 blinded evaluation test clip (older wording)
    section_<ss>_[<source|target>_]supplemental_<clean|noise>_<nnnn>[_<attributes>].wav
    section_<ss>_<machine|noise>[_<source|target>]_<nnnn>[_<attributes>].wav   (DCASE 2025 supplemental)

The tokens between the section and the clip index are keywords, in any order: a domain
(``source``/``target``), a split (``train``/``test``/``supplemental``), a label
(``normal``/``anomaly``) and a supplemental kind (``clean`` or ``machine`` mean clean machine
sound, ``noise`` means noise only). Everything after the clip index is the attribute string,
``noAttribute`` when the attributes are hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePath

from asd_utils.data.errors import DataError

__all__ = ["ClipName", "parse_filename", "parse_attributes", "EXPECTED_PATTERNS"]

EXPECTED_PATTERNS = (
    "'section_<ss>_<source|target>_<train|test>_<normal|anomaly>_<nnnn>[_<attributes>].wav', "
    "a blinded evaluation name 'section_<ss>_<nnnn>.wav', or a supplemental name "
    "'section_<ss>_[<source|target>_]supplemental_<clean|noise>_<nnnn>[_<attributes>].wav' / "
    "'section_<ss>_<machine|noise>[_<source|target>]_<nnnn>[_<attributes>].wav'"
)

NO_ATTRIBUTE = "noAttribute"

_SECTION_RE = re.compile(r"^section_(\d{2})(?:_(.*))?$")
_DOMAINS = {"source": "source", "target": "target"}
_SPLITS = {"train": "train", "test": "test", "supplemental": "supplemental"}
_LABELS = {"normal": "normal", "anomaly": "anomaly"}
_KINDS = {"clean": "clean", "machine": "clean", "noise": "noise"}
_KEYWORDS: dict[str, tuple[str, str]] = {
    **{k: ("domain", v) for k, v in _DOMAINS.items()},
    **{k: ("split", v) for k, v in _SPLITS.items()},
    **{k: ("label", v) for k, v in _LABELS.items()},
    **{k: ("supplemental kind", v) for k, v in _KINDS.items()},
}
_NUMERIC_RE = re.compile(r"^[+-]?\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class ClipName:
    """The fields encoded in one DCASE clip file name.

    Attributes:
        file_name: the base name, e.g. ``section_00_source_train_normal_0000_noAttribute.wav``.
        section: two-digit section, e.g. ``"00"``.
        domain: ``"source"``, ``"target"`` or None (blinded evaluation or unstated).
        split: ``"train"``, ``"test"`` or ``"supplemental"``.
        label: ``"normal"``, ``"anomaly"`` or None (blinded or unstated).
        clip_index: the clip index as written, e.g. ``"0042"`` (indices are not contiguous).
        attributes: the attribute string as written after the index (``"noAttribute"`` when
            hidden, ``""`` when absent).
        attribute_dict: the attributes as ``{key: value}`` (empty when hidden or absent).
        supplemental_kind: ``"clean"`` (clean machine sound), ``"noise"`` (noise only) or None.
        blinded: True for blinded evaluation test names (``section_00_0000.wav``).
    """

    file_name: str
    section: str
    domain: str | None
    split: str
    label: str | None
    clip_index: str
    attributes: str
    attribute_dict: dict[str, str] = field(default_factory=dict, hash=False)
    supplemental_kind: str | None = None
    blinded: bool = False

    @property
    def is_anomaly(self) -> float:
        """1.0 for anomaly, 0.0 for normal, NaN when the label is unknown."""
        if self.label is None:
            return float("nan")
        return 1.0 if self.label == "anomaly" else 0.0


def _is_key(token: str) -> bool:
    """A token can be an attribute key when it is not a plain number."""
    return bool(token) and not _NUMERIC_RE.match(token)


def parse_attributes(attributes: str) -> dict[str, str]:
    """Parse an attribute string ``key_value_key_value...`` into a dict.

    ``"car_A1_spd_28V_mic_1_noise_1"`` gives ``{"car": "A1", "spd": "28V", "mic": "1",
    "noise": "1"}``; ``"noAttribute"`` and ``""`` give ``{}``. Values may hold letters and
    digits. Defensive on irregular strings: tokens are paired greedily, a plain number is never
    taken as a key (it is skipped), a trailing key without a value is skipped, and a repeated key
    keeps its first value. The raw string is always kept by the caller, so nothing is lost.
    """
    if attributes is None:
        return {}
    text = str(attributes).strip()
    if not text or text == NO_ATTRIBUTE:
        return {}
    tokens = [t for t in text.split("_") if t != "" and t != NO_ATTRIBUTE]
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        key = tokens[i]
        if _is_key(key) and i + 1 < len(tokens):
            out.setdefault(key, tokens[i + 1])
            i += 2
        else:
            i += 1
    return out


def _fail(name: str, reason: str) -> DataError:
    return DataError(f"{name!r}: cannot parse the DCASE file name ({reason}); expected {EXPECTED_PATTERNS}")


def _kind_from_tokens(tokens: list[str]) -> str | None:
    kinds = {_KINDS[t.lower()] for t in tokens if t.lower() in _KINDS}
    return kinds.pop() if len(kinds) == 1 else None


def parse_filename(name: str | PurePath, *, split: str | None = None) -> ClipName:
    """Parse one DCASE clip file name (a base name or a path; only the base name is read).

    Args:
        name: e.g. ``"section_00_source_train_normal_0000_car_A1_spd_28V_mic_1.wav"``.
        split: the split given by the folder holding the file (``train``/``test``/
            ``supplemental``); when given it overrides the split written in the name, since in
            the DCASE layout the folder is authoritative. Without it, the split comes from the
            name: a ``train``/``test``/``supplemental`` token, else ``supplemental`` when a
            supplemental kind token (``clean``/``machine``/``noise``) is present, else ``test``
            for a blinded name.

    Returns:
        A :class:`ClipName`. For a supplemental clip the kind is read from the keyword tokens;
        only when those say nothing are the attribute tokens searched for ``clean``/
        ``machine``/``noise`` (None when absent or ambiguous); it is never assumed.

    Raises:
        DataError: when the name does not follow any of :data:`EXPECTED_PATTERNS`; the message
            names the file and the patterns expected.
    """
    shown = str(name)  # error messages name the file as given (the full path when one is given)
    file_name = PurePath(shown).name
    if not file_name.lower().endswith(".wav"):
        raise _fail(shown, "no '.wav' extension")
    stem = file_name[: -len(".wav")]
    match = _SECTION_RE.match(stem)
    if match is None:
        raise _fail(shown, "it does not start with 'section_<two digits>_'")
    section, rest = match.group(1), match.group(2)
    tokens = rest.split("_") if rest else []

    idx_pos = next((i for i, t in enumerate(tokens) if t.isdigit()), None)
    if idx_pos is None:
        raise _fail(shown, "no clip index (a token of digits)")
    head, clip_index, tail = tokens[:idx_pos], tokens[idx_pos], tokens[idx_pos + 1 :]

    found: dict[str, str] = {}
    for token in head:
        entry = _KEYWORDS.get(token.lower())
        if entry is None:
            raise _fail(shown, f"unexpected token {token!r} before the clip index")
        what, value = entry
        if found.get(what, value) != value:
            raise _fail(shown, f"two different {what} tokens")
        found[what] = value
    domain, name_split = found.get("domain"), found.get("split")
    label, kind = found.get("label"), found.get("supplemental kind")

    blinded = domain is None and label is None and kind is None and name_split in (None, "test")
    if split is not None:
        if split not in _SPLITS:
            raise DataError(f"split {split!r} for {shown!r}: expected one of {sorted(_SPLITS)}")
        final_split = split
    elif name_split is not None:
        final_split = name_split
    elif kind is not None:
        final_split = "supplemental"
    elif blinded:
        final_split = "test"
    else:
        raise _fail(shown, "no split token (train/test/supplemental) and no folder split given")
    if final_split != "test":
        blinded = False

    non_empty_tail = [t for t in tail if t != ""]
    attributes = "_".join(non_empty_tail)
    attribute_dict = parse_attributes(attributes)
    if final_split == "supplemental":
        if kind is None:
            kind = _kind_from_tokens(non_empty_tail)
    else:
        kind = None

    return ClipName(
        file_name=file_name,
        section=section,
        domain=domain,
        split=final_split,
        label=label,
        clip_index=clip_index,
        attributes=attributes,
        attribute_dict=attribute_dict,
        supplemental_kind=kind,
        blinded=blinded,
    )
