"""Sphinx configuration of the compendium's book (``make book``; sources staged by scripts/build_book.py).

The staged source folder holds the README as ``index.md``, the executed notebooks, ``papers/``,
``docs/`` and an API reference. The book renders the outputs the notebooks were executed with
(``nb_execution_mode = "off"``) and loads nothing from the network, so it opens offline from the
file system.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # autodoc imports the package of this checkout

project = "DCASE Task 2 compendium"
author = "The DCASE Task 2 compendium contributors"
copyright = "2026, The DCASE Task 2 compendium contributors"  # noqa: A001 (Sphinx's name)

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

# notebooks: render the executed outputs, never execute while building
nb_execution_mode = "off"
nb_merge_streams = True
myst_heading_anchors = 3  # README and docs link to section anchors (#the-two-commands)
myst_enable_extensions = ["colon_fence", "deflist"]  # no dollarmath: MathJax would load from a CDN

autosummary_generate = True
autosummary_ignore_module_all = False  # a module with __all__ lists its public API only
# each object is documented once, in the module that defines it (packages re-export through __all__)
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports = ["torchaudio"]
napoleon_google_docstring = True
napoleon_numpy_docstring = True

exclude_patterns = ["_build", "**.ipynb_checkpoints"]
# docstrings are written for readers of the code, not as strict reStructuredText
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure", "docutils"]

html_theme = "furo"
html_title = "DCASE Task 2 compendium"
html_static_path: list[str] = []
html_copy_source = False
html_show_sourcelink = False


def _skip_metadata_routing(app, what, name, obj, skip, options):
    """scikit-learn adds ``set_*_request`` methods to every estimator class: not ours to document."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_routing)
