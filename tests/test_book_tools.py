"""The book's builder (scripts/build_book.py) and the README's results table
(scripts/readme_results.py) on hand-built cases; the book itself is built in
tests/notebooks/test_book.py."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_book = _load("build_book")
readme_results = _load("readme_results")

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()


def _widget_notebook() -> nbformat.NotebookNode:
    """A notebook whose one code cell displayed a VBox(Dropdown, Output[figure + html], Image, Label)."""
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_dd", "IPY_MODEL_out", "IPY_MODEL_img",
                                                                  "IPY_MODEL_lab", "IPY_MODEL_gone"]}},
        "dd": {"model_name": "DropdownModel",
               "state": {"description": "machine", "_options_labels": ["fan", "valve", "ToyCar"], "index": 1}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "display_data", "data": {"image/png": PNG, "text/plain": "<Figure>"}, "metadata": {}},
            {"output_type": "display_data", "data": {"text/html": "<audio controls></audio>"}, "metadata": {}},
        ]}},
        "img": {"model_name": "ImageModel", "state": {"format": "png"},
                "buffers": [{"path": ["value"], "data": PNG, "encoding": "base64"}]},
        "lab": {"model_name": "LabelModel", "state": {"value": "3 < 4 clips"}},
        "layout": {"model_name": "LayoutModel", "state": {}},
    }
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {build_book.WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    cell = nbformat.v4.new_code_cell("from asd_utils.notebook import tour\n"
                                     "from asd_utils.notebook.plots import spectrogram\n"
                                     "asd_utils.evaluation.metrics.evaluate(x)")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="hello\n"),
        nbformat.v4.new_output("display_data", data={build_book.WIDGET_VIEW: {"model_id": "box"},
                                                     "text/plain": "VBox(...)"}),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\nscores by `asd_utils.evaluation.metrics.evaluate()`, not `x`"), cell]  # noqa: E501
    return nb


def test_widget_view_becomes_its_saved_state():
    nb = _widget_notebook()
    assert build_book.static_widgets(nb) == 1
    outputs = nb.cells[1].outputs
    assert "widgets" not in nb.metadata  # no widget JavaScript is loaded for this page
    assert outputs[0].output_type == "stream"
    kinds = [sorted(o.get("data", {})) for o in outputs[1:]]
    # dropdown line, the Output widget's figure and audio, the Image widget, then label + missing model
    assert kinds == [["text/html"], ["image/png", "text/plain"], ["text/html"], ["image/png"], ["text/html"]]
    assert "<strong>machine</strong> valve" in outputs[1].data["text/html"]
    assert "one of 3 options" in outputs[1].data["text/html"]
    assert outputs[4].data["image/png"] == PNG
    assert "3 &lt; 4 clips" in outputs[5].data["text/html"]  # escaped, and merged with the next block
    assert "no saved state" in outputs[5].data["text/html"]
    assert not any(build_book.WIDGET_VIEW in o.get("data", {}) for o in outputs)


def test_widget_cycles_and_unknown_views_do_not_loop():
    state = {"a": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_b"]}},
             "b": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_a"]}}}
    assert build_book.widget_outputs("a", state) == []
    assert build_book.widget_outputs("c", state)[0].data["text/html"].startswith("<p><em>[widget c")


def test_markdown_names_of_the_package_link_to_the_api():
    text = "see `asd_utils.evaluation.metrics.evaluate()` and `asd_utils.evaluation.bootstrap`, not `numpy.mean` or {py:obj}`asd_utils.x`"  # noqa: E501
    assert build_book.link_markdown(text) == (
        "see {py:obj}`asd_utils.evaluation.metrics.evaluate` and {py:obj}`asd_utils.evaluation.bootstrap`, not `numpy.mean` or "  # noqa: E501
        "{py:obj}`asd_utils.x`")


def test_modules_a_notebook_calls_are_listed_once():
    known = {"asd_utils", "asd_utils.notebook.tour", "asd_utils.notebook.plots", "asd_utils.evaluation.metrics", "asd_utils.notebook.context"}  # noqa: E501
    assert build_book.modules_called(_widget_notebook(), known) == ["asd_utils.evaluation.metrics", "asd_utils.notebook.plots",  # noqa: E501
                                                                     "asd_utils.notebook.tour"]
    assert "asd_utils.evaluation.bootstrap" in build_book.package_modules()
    assert "asd_utils.backbones" in build_book.package_modules()


def test_prepared_notebook_says_where_it_is_computed(tmp_path):
    source = tmp_path / "in.ipynb"
    nbformat.write(_widget_notebook(), source)
    counts = build_book.prepare_notebook(source, tmp_path / "out" / "n.ipynb", build_book.package_modules())
    assert counts == {"widgets": 1, "figures": 2}
    cells = nbformat.read(tmp_path / "out" / "n.ipynb", as_version=4).cells
    assert cells[0].source.startswith("# Title")
    assert cells[1].source == ("**Where this is computed:** {py:mod}`asd_utils.evaluation.metrics` · "
                               "{py:mod}`asd_utils.notebook.plots` · {py:mod}`asd_utils.notebook.tour`")


def test_missing_executed_notebooks_are_named(tmp_path):
    (tmp_path / "00_tour.ipynb").write_text("{}")
    assert build_book.missing_notebooks(tmp_path, ["00_tour", "01_ae"]) == ["01_ae"]
    with pytest.raises(build_book.BookError, match="no executed copy of 00_dataset_tour, 01_baseline"):
        build_book.main(["--executed", str(tmp_path), "--no-run", "--out", str(tmp_path / "b")])
    stems = build_book.notebook_stems()
    assert stems[0] == "00_dataset_tour" and stems == sorted(stems)


# -- README results ----------------------------------------------------------------------------------
REPORTED = pd.DataFrame(
    [("004", "Table 2", "Three-subnet K-Means", m, metric, v)
     for m, values in (("fan", (60.0, 50.0, 40.0)), ("valve", (80.0, 60.0, 50.0)))
     for metric, v in zip(("auc_source", "auc_target", "pauc"), values)]
    + [("003", "Table 2", "EAT-FFT", "All", "hmean", 62.17), ("003", "Table 2", "EAT-FFT", "fan", "auc_source", 99.0)],
    columns=["report", "table", "system", "machine", "metric", "value"])


def test_reported_official_score_is_the_printed_summary_or_the_harmonic_mean():
    expected = 6 / sum(1 / v for v in (60.0, 50.0, 40.0, 80.0, 60.0, 50.0))
    assert readme_results.reported_official_score(REPORTED, "004", "Three-subnet K-Means") == pytest.approx(expected)
    assert readme_results.reported_official_score(REPORTED, "003", "EAT-FFT") == 62.17
    assert np.isnan(readme_results.reported_official_score(REPORTED, "003", "BEATs-FFT"))


def test_best_per_report_prefers_systems_the_report_prints():
    summary = pd.DataFrame({
        "notebook": ["06_ioa_three_subnetworks_kmeans"] * 3 + ["07_pretraining"],
        "system": ["Three-subnet K-Means", "Three-subnet GMM", "Not catalogued", "EAT kNN (CLS) [untrained stand-in]"],
        "official_score": [0.60, 0.65, 0.90, 0.99], "ci_low": [0.55, 0.6, 0.8, 0.9], "ci_high": [0.65, 0.7, 0.95, 1.0],
        "note": ["synthetic data"] * 4})
    best = readme_results.best_per_report(summary, REPORTED)
    # GMM scores higher here but its report row is absent from this reported table; 08 reproduces no report
    assert best["system"].tolist() == ["Three-subnet K-Means"]
    row = best.iloc[0]
    assert (row.score, row.ci_low, row.ci_high) == pytest.approx((60.0, 55.0, 65.0))
    assert row.reported_in == "004"
    table = readme_results.readme_table(best)
    assert "| [IOA-CAS](papers/004_ioa_cas.md) | 06 | Three-subnet K-Means | 60.0 [55.0, 65.0] |" in table
    assert table.endswith("(DCASE 2024 dev) |")


def test_table_goes_between_the_markers_only():
    text = f"intro\n{readme_results.START}\nold\n{readme_results.END}\noutro\n"
    assert readme_results.replace_between_markers(text, "new", where="X") == \
        f"intro\n{readme_results.START}\nnew\n{readme_results.END}\noutro\n"
    with pytest.raises(ValueError, match="X: expected exactly one"):
        readme_results.replace_between_markers("no markers", "new", where="X")


def test_committed_summary_and_readme_agree():
    """The README's table is what the script renders from the committed summary (rerun it after
    committing a new summary: python scripts/readme_results.py)."""
    summary = readme_results.read_summary(readme_results.SUMMARY)
    from asd_utils.evaluation import reported

    best = readme_results.best_per_report(summary, reported.load_all_reported(ROOT / "papers"))
    readme = (ROOT / "README.md").read_text()
    assert readme_results.readme_table(best) in readme
    assert len(readme.splitlines()) <= 250
    with pytest.raises(ValueError, match="missing columns"):
        readme_results.read_summary(ROOT / "papers" / "003_xju_table2.csv")


def test_progress_bar_renders_as_one_row():
    state = {"bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_t", "IPY_MODEL_p", "IPY_MODEL_n"]}},
             "t": {"model_name": "HTMLModel", "state": {"value": "loading: 100%"}},
             "p": {"model_name": "FloatProgressModel", "state": {"value": 112.0, "max": 112.0, "description": ""}},
             "n": {"model_name": "HTMLModel", "state": {"value": " 112/112"}}}
    (row,) = build_book.widget_outputs("bar", state)
    assert row.data["text/html"] == ('<div style="display:flex;gap:0.5em;align-items:center">loading: 100%'
                                     '<div class="widget-static"><progress value="112.0" max="112.0"></progress>'
                                     '</div> 112/112</div>')
