"""Build the executed compendium as a static HTML book (``make book``).

    python scripts/build_book.py                          # reuse outputs/default/, run what is missing
    python scripts/build_book.py --profile smoke          # the smoke run's notebooks
    python scripts/build_book.py --executed RUN/notebooks --no-run  # a run made with --output-dir RUN

Steps: (1) find an executed copy of every notebook of ``notebooks/`` in ``--executed`` (default
``outputs/<profile>/``, where ``make reproduce`` puts them); if some are missing, run the
runner for the profile (its caches make notebooks already run cheap), unless ``--no-run``;
(2) stage a Sphinx source folder: the README as the front page, the executed notebooks in
number order, ``papers/`` and ``docs/`` as chapters, CHANGELOG/CONTRIBUTING/benchmarks pages, and
an API reference of ``asd_utils`` (autosummary + autodoc); (3) build HTML with ``book/conf.py``.

Widgets become their static state: each widget view in an executed notebook is replaced by what
its saved state shows (an Output widget's outputs, an Image widget's picture, HTML and labels,
and one line per control with its current value), and the widget state is dropped, so the book
loads no widget JavaScript and opens offline from the file system. Every mention of an
``asd_utils`` object in a notebook's text links to the API reference, and every notebook page
starts with the modules its code calls ("where is this computed").
"""

from __future__ import annotations

import argparse
import base64
import copy
import html
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
NOTEBOOK_NAME = re.compile(r"^\d\d_.+\.ipynb$")
# pages copied beside the README, as (source, path in the book)
EXTRA_PAGES = (("CHANGELOG.md", "CHANGELOG.md"), ("CONTRIBUTING.md", "CONTRIBUTING.md"),
               ("benchmarks/README.md", "benchmarks/README.md"))
DOWNLOADS = ("LICENSE", "CITATION.cff")  # linked from the README; served as files


class BookError(RuntimeError):
    """A book that cannot be built: names what is missing and how to get it."""


# -- executed notebooks ------------------------------------------------------------------------------
def notebook_stems(source: Path = ROOT / "notebooks") -> list[str]:
    """The compendium's notebooks (``NN_name``), in number order."""
    return sorted(p.stem for p in source.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))


def missing_notebooks(executed: Path, stems: Iterable[str]) -> list[str]:
    """The stems that have no executed copy ``<executed>/<stem>.ipynb``."""
    return [s for s in stems if not (executed / f"{s}.ipynb").is_file()]


def run_missing(profile: str, executed: Path, missing: list[str], jobs: int) -> None:
    """Execute the compendium with the runner so that every notebook has an executed copy."""
    default_place = executed.resolve() == (ROOT / "outputs" / profile).resolve()
    command = [sys.executable, "-m", "asd_utils.run.runner", "--profile", profile, "--jobs", str(jobs)]
    if not default_place:
        if executed.name != "notebooks":
            raise BookError(f"{executed}: missing executed notebooks {missing}; the runner writes them to "
                            "outputs/<profile>/ or <--output-dir>/notebooks, so run it first or pass --no-run")
        command += ["--output-dir", str(executed.parent)]
    print(f"book: executing the {profile} run ({len(missing)} notebook(s) missing: {', '.join(missing)})",
          flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


# -- widgets as their static state -------------------------------------------------------------------
def _model_id(reference: str) -> str:
    return reference[len("IPY_MODEL_"):] if isinstance(reference, str) and reference.startswith("IPY_MODEL_") else ""


def _html_output(markup: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data={"text/html": markup})


def _control_line(name: str, state: dict) -> str | None:
    """One line saying what a control shows, e.g. ``machine: fan``; None for models with no view
    of their own (layouts, styles)."""
    description = html.escape(str(state.get("description") or "")).strip()
    label = f"<strong>{description}</strong> " if description else ""
    if "_options_labels" in state:
        labels = list(state["_options_labels"])
        index = state.get("index")
        chosen = [labels[i] for i in index if 0 <= i < len(labels)] if isinstance(index, list) else (
            [labels[index]] if isinstance(index, int) and 0 <= index < len(labels) else [])
        shown = ", ".join(html.escape(str(c)) for c in chosen) or "(none)"
        return f"{label}{shown} <small>(one of {len(labels)} options)</small>"
    if name in ("ButtonModel",):
        return f"<button disabled>{description or 'button'}</button>"
    if name in ("FloatProgressModel", "IntProgressModel"):
        return f'{label}<progress value="{state.get("value", 0)}" max="{state.get("max", 100)}"></progress>'
    if "value" in state and not isinstance(state["value"], dict):
        return f"{label}{html.escape(str(state['value']))}"
    return None


def widget_outputs(model_id: str, state: dict, seen: set[str] | None = None) -> list[nbformat.NotebookNode]:
    """What a widget view showed when the notebook was saved, as ordinary notebook outputs.

    model_id: the view's model; state: the notebook's saved widget state (``state`` of
    ``metadata.widgets[WIDGET_STATE]``). Boxes render their children in order; an Output widget
    gives its captured outputs; an Image widget its picture (base64 buffer); HTML and Label
    widgets their value; other controls one line with their description and current value.
    A model absent from the state renders as a note saying so.
    """
    seen = set() if seen is None else seen
    if model_id in seen:
        return []
    seen.add(model_id)
    model = state.get(model_id)
    if model is None:
        return [_html_output(f"<p><em>[widget {html.escape(model_id)}: no saved state]</em></p>")]
    name, values = model.get("model_name", ""), model.get("state", {})
    if name == "OutputModel":
        return [nbformat.from_dict(copy.deepcopy(o)) for o in values.get("outputs", [])]
    if name == "ImageModel":
        for buffer in model.get("buffers", []):
            if buffer.get("path") == ["value"]:
                data = buffer["data"] if buffer.get("encoding", "base64") == "base64" else \
                    base64.b64encode(bytes(buffer["data"], "latin-1")).decode()
                mime = f"image/{values.get('format', 'png')}".replace("svg", "svg+xml")
                return [nbformat.v4.new_output("display_data", data={mime: data})]
        return []
    if name in ("HTMLModel", "HTMLMathModel"):
        return [_html_output(str(values.get("value", "")))]
    if name == "LabelModel":
        return [_html_output(f"<p>{html.escape(str(values.get('value', '')))}</p>")]
    children = values.get("children")
    if isinstance(children, list):
        titles = values.get("titles") or values.get("_titles") or []
        outputs = []
        for position, child in enumerate(children):
            if isinstance(titles, list) and position < len(titles) and titles[position]:
                outputs.append(_html_output(f"<p><strong>{html.escape(str(titles[position]))}</strong></p>"))
            outputs.extend(widget_outputs(_model_id(child), state, seen))
        if name == "HBoxModel" and outputs and all(_html_only(o) for o in outputs):  # e.g. a progress bar
            row = "".join(o["data"]["text/html"] for o in outputs)
            return [_html_output(f'<div style="display:flex;gap:0.5em;align-items:center">{row}</div>')]
        return outputs
    line = _control_line(name, values)
    return [_html_output(f'<div class="widget-static">{line}</div>')] if line else []


def _html_only(output: nbformat.NotebookNode) -> bool:
    return output.get("output_type") == "display_data" and set(output.get("data", {})) == {"text/html"}


def _merge_html(outputs: list[nbformat.NotebookNode]) -> list[nbformat.NotebookNode]:
    """Join runs of consecutive HTML-only outputs into one (a box of controls reads as one block)."""
    merged: list[nbformat.NotebookNode] = []
    for output in outputs:
        if _html_only(output) and merged and _html_only(merged[-1]):
            merged[-1]["data"]["text/html"] += "\n" + output["data"]["text/html"]
        else:
            merged.append(output)
    return merged


def static_widgets(nb: nbformat.NotebookNode) -> int:
    """Replace every widget view of ``nb`` by its static state (in place) and drop the widget
    state metadata; returns the number of views replaced."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(output)
                continue
            replaced += 1
            outputs.extend(widget_outputs(view.get("model_id", ""), state))
        cell.outputs = _merge_html(outputs)
    nb.metadata.pop("widgets", None)
    return replaced


# -- links into the API reference ----------------------------------------------------------------------
_INLINE_OBJECT = re.compile(r"(?<![`}])`(asd_utils(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\(\))?`")
_CODE_MODULE = re.compile(r"\bfrom[ \t]+(asd_utils(?:\.\w+)*)[ \t]+import[ \t]+([\w \t,()]+)|\b(asd_utils(?:\.\w+)+)")


def link_markdown(text: str) -> str:
    """Inline code naming an ``asd_utils`` object becomes a cross-reference to its API page
    (``{py:obj}`` resolves modules, classes and functions; an unknown name stays code)."""
    return _INLINE_OBJECT.sub(lambda m: "{py:obj}`" + m.group(1) + "`", text)


def modules_called(nb: nbformat.NotebookNode, known: set[str]) -> list[str]:
    """The ``asd_utils`` modules a notebook's code uses (imports and dotted names), sorted, limited
    to ``known`` modules."""
    found = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for match in _CODE_MODULE.finditer(cell.source):
            if match.group(1):
                names = [n for n in re.split(r"[,\s()]+", match.group(2)) if n and n != "as"]
                submodules = {f"{match.group(1)}.{name}" for name in names} & known
                # ``from package import module``: the module is called; ``from module import name``: the module
                found.update(submodules or {match.group(1)})
            else:
                parts = match.group(3).split(".")
                prefixes = [".".join(parts[:i]) for i in range(2, len(parts) + 1)]
                found.update([p for p in prefixes if p in known][-1:])  # the deepest module named
    return sorted(name for name in found if name in known and name != "asd_utils")


def package_modules() -> set[str]:
    """Every importable module name of the ``asd_utils`` package (from its files)."""
    names = set()
    for path in (ROOT / "asd_utils").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def prepare_notebook(source: Path, target: Path, known_modules: set[str]) -> dict:
    """Copy an executed notebook into the book: static widgets, API links, "where is this
    computed" after the title. Returns counts (widgets, figures) for the log."""
    nb = nbformat.read(source, as_version=4)
    widgets = static_widgets(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = link_markdown(cell.source)
    modules = modules_called(nb, known_modules)
    if modules:
        where = "**Where this is computed:** " + " · ".join("{py:mod}`" + m + "`" for m in modules)
        first_markdown = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
        nb.cells.insert(first_markdown + 1, nbformat.v4.new_markdown_cell(where))
    figures = sum(1 for c in nb.cells for o in c.get("outputs", [])
                  if any(k.startswith("image/") for k in o.get("data", {})))
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return {"widgets": widgets, "figures": figures}


# -- staging -------------------------------------------------------------------------------------------
# reStructuredText: autosummary generates its stub pages only from rst directives
API_PAGE = """API reference
=============

Generated from the docstrings of the package ``asd_utils``; ``CONTRIBUTING.md`` states the
contracts its modules keep. Every notebook page links here from its "where this is computed" line.

.. autosummary::
   :toctree: generated
   :recursive:

   asd_utils
"""


def _toctree(caption: str, entries: Iterable[str]) -> str:
    lines = "\n".join(entries)
    return f"\n```{{toctree}}\n:caption: {caption}\n:maxdepth: 1\n:hidden:\n\n{lines}\n```\n"


def stage(source: Path, executed: Path, stems: list[str]) -> dict:
    """Write the book's Sphinx source folder ``source`` (emptied first); returns per-notebook counts."""
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    for folder in ("docs", "papers"):
        shutil.copytree(ROOT / folder, source / folder)
    for name, target in EXTRA_PAGES:
        (source / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / target)
    for name in DOWNLOADS:
        shutil.copy2(ROOT / name, source / name)
    known = package_modules()
    counts = {stem: prepare_notebook(executed / f"{stem}.ipynb", source / "notebooks" / f"{stem}.ipynb", known)
              for stem in stems}
    (source / "api.rst").write_text(API_PAGE)
    docs = sorted(p.relative_to(source).with_suffix("").as_posix() for p in (source / "docs").glob("*.md"))
    papers = sorted(p.relative_to(source).with_suffix("").as_posix() for p in (source / "papers").glob("*.md"))
    front = (ROOT / "README.md").read_text()
    front += _toctree("Notebooks", [f"notebooks/{s}" for s in stems])
    front += _toctree("Reports", papers)
    front += _toctree("How it works", docs + ["benchmarks/README"])
    front += _toctree("Project", ["CHANGELOG", "CONTRIBUTING", "api"])
    (source / "index.md").write_text(front)
    return counts


def build(source: Path, html_dir: Path, doctrees: Path) -> None:
    """Run Sphinx (HTML builder) on the staged sources with ``book/conf.py``."""
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-q", "-c", str(BOOK), "-d", str(doctrees),
               str(source), str(html_dir)]
    subprocess.run(command, cwd=ROOT, check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    parser.add_argument("--executed", type=Path, help="folder of executed notebooks (default: outputs/<profile>)")
    parser.add_argument("--out", type=Path, default=BOOK / "_build", help="build folder (default: %(default)s)")
    parser.add_argument("--no-run", action="store_true", help="fail instead of running missing notebooks")
    parser.add_argument("--jobs", type=int, default=2, help="runner --jobs when notebooks must be executed")
    args = parser.parse_args(argv)
    executed = (args.executed or ROOT / "outputs" / args.profile).resolve()
    stems = notebook_stems()
    missing = missing_notebooks(executed, stems)
    if missing and args.no_run:
        raise BookError(f"{executed}: no executed copy of {', '.join(missing)}; run `make reproduce` "
                        f"(PROFILE={args.profile}) first, or drop --no-run")
    if missing:
        run_missing(args.profile, executed, missing, args.jobs)
        still = missing_notebooks(executed, stems)
        if still:
            raise BookError(f"{executed}: the run left no executed copy of {', '.join(still)}")
    out = args.out.resolve()
    counts = stage(out / "source", executed, stems)
    for stem, count in counts.items():
        print(f"book: {stem}: {count['figures']} figure output(s), {count['widgets']} widget view(s) made static")
    build(out / "source", out / "html", out / "doctrees")
    print(f"book: {out / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
