"""The notebooks stay narrative plus calls into ``asd_utils``: every code cell is short, and the first
line of every notebook says what it is (the report it reproduces, by the report id of
``asd_utils.notebook.catalogue``, or which of the compendium's own notebooks it is)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from asd_utils.notebook.catalogue import CATALOGUE

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
MAX_CELL_LINES = 25  # longer logic belongs in the package
OWN_KINDS = ("Tour", "Official baseline", "Pretraining", "Comparison")  # notebooks that reproduce no report
TITLE = re.compile(r"^# (\d\d) · (Report (\d{3})|" + "|".join(OWN_KINDS) + r") · \S")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def test_the_notebooks_are_found():
    assert len(NOTEBOOKS) >= 9, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_has_at_most_25_lines(path):
    long = [(i, len(_source(c).splitlines())) for i, c in enumerate(_cells(path))
            if c["cell_type"] == "code" and len(_source(c).splitlines()) > MAX_CELL_LINES]
    assert long == [], f"{path.name}: code cells (index, lines) longer than {MAX_CELL_LINES} lines: {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_first_line_says_which_report_or_what_the_notebook_is(path):
    first = _cells(path)[0]
    assert first["cell_type"] == "markdown"
    line = _source(first).splitlines()[0]
    match = TITLE.match(line)
    assert match, f"{path.name}: first line {line!r} is not '# NN · Report <id> · ...' or '# NN · <kind> · ...'"
    assert match.group(1) == path.name[:2]
    reports = {card.report for card in CATALOGUE if card.notebook == path.name[:2] and card.report != "baseline"}
    assert ({match.group(3)} if match.group(3) else set()) == reports, (
        f"{path.name}: the title names report {match.group(3)}, the catalogue {sorted(reports)}")


def test_the_title_pattern_on_hand_written_lines():
    assert TITLE.match("# 06 · Report 004 · IOA-CAS: three subnetworks").group(3) == "004"
    assert TITLE.match("# 00 · Tour · The dataset").group(3) is None
    assert not TITLE.match("# 06 · IOA-CAS: three subnetworks")
    assert not TITLE.match("# 06 · Report 04 · IOA-CAS")
