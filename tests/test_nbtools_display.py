"""The display helpers widgets write through (asd_utils.notebook.context): outputs replaced in one step, figures
as PNG data, a dropdown with one pane."""

import base64

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from IPython.display import Markdown  # noqa: E402

from asd_utils.notebook import context  # noqa: E402


def _figure(value=1.0):
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, value])
    return fig


def test_output_items_figure_as_png_text_as_stream_rest_through_the_formatter():
    fig = _figure()
    item = context.output_item(fig)
    assert item["output_type"] == "display_data"
    assert base64.b64decode(item["data"]["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)  # closed: a widget never leaks figures
    assert context.output_item("hello") == {"output_type": "stream", "name": "stdout", "text": "hello\n"}
    assert context.output_item(Markdown("**x**"))["data"]["text/markdown"] == "**x**"
    assert "<table" in context.output_item(pd.DataFrame({"a": [1]}))["data"]["text/html"]


def test_show_in_replaces_a_pane_in_one_assignment():
    import ipywidgets as widgets

    pane = widgets.Output()
    seen = []
    pane.observe(lambda change: seen.append(change["new"]), names="outputs")
    context.show_in(pane, "first")
    context.show_in(pane, _figure(), "second")
    assert [len(outputs) for outputs in seen] == [1, 2]  # never an empty state in between
    assert "image/png" in pane.outputs[0]["data"] and pane.outputs[1]["text"] == "second\n"
    context.show_in(pane)
    assert pane.outputs == ()


def test_figure_picker_draws_once_per_pick():
    calls = []

    def draw(value):
        calls.append(value)
        return [_figure(value), f"value {value}"]

    box = context.figure_picker([1, 2], draw, description="x")
    assert calls == [1] and box.pane.outputs[1]["text"] == "value 1\n"
    box.picker.value = 2
    assert calls == [1, 2] and box.pane.outputs[1]["text"] == "value 2\n"
    empty = context.figure_picker([], draw)
    assert empty.pane.outputs[0]["text"] == "nothing to show\n" and calls == [1, 2]


def test_the_runner_signs_an_executed_notebook_as_trusted(tmp_path, monkeypatch):
    """JupyterLab renders stored widget views only in a trusted notebook."""
    import nbformat
    from nbformat.sign import NotebookNotary

    from asd_utils.run.execute import trust_notebook

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))  # this test's own signature store
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1", outputs=[nbformat.v4.new_output(
        "display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2,
                                                                           "version_minor": 0}})])])
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, str(path))
    assert not NotebookNotary().check_signature(nbformat.read(str(path), as_version=4))
    trust_notebook(path)
    assert NotebookNotary().check_signature(nbformat.read(str(path), as_version=4))
