"""Fail when a committed notebook carries outputs or execution counts.

Usage: python scripts/check_notebooks_clean.py notebooks [--fix]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def dirty_cells(path: Path) -> int:
    notebook = json.loads(path.read_text())
    return sum(
        1
        for cell in notebook.get("cells", [])
        if cell.get("cell_type") == "code" and (cell.get("outputs") or cell.get("execution_count"))
    )


def strip(path: Path) -> None:
    notebook = json.loads(path.read_text())
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "notebooks")
    fix = "--fix" in argv
    bad = []
    for path in sorted(folder.glob("*.ipynb")):
        if dirty_cells(path):
            if fix:
                strip(path)
            else:
                bad.append(path.name)
    if bad:
        print("notebooks committed with outputs (run with --fix):", ", ".join(bad))
        return 1
    print(f"notebooks clean: {len(list(folder.glob('*.ipynb')))} checked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
