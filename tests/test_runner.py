import argparse

import pytest

from asd_utils import runner


def test_notebooks_are_found_in_order():
    names = [p.stem for p in runner.available_notebooks()]
    assert names == sorted(names) and names[0].startswith("00_")


def test_select_by_number_or_name_and_unknown_is_named():
    notebooks = runner.available_notebooks()
    assert [p.stem for p in runner.select_notebooks(notebooks, ["01"])] == ["01_baseline_autoencoder"]
    assert runner.select_notebooks(notebooks, ["01_baseline_autoencoder", "00"])[0].stem == "00_dataset_tour"
    with pytest.raises(ValueError, match="no notebook matches '99'"):
        runner.select_notebooks(notebooks, ["99"])


def test_parameters_parse_yaml_scalars():
    assert runner.parse_parameter("SEED=3") == ("SEED", 3)
    assert runner.parse_parameter("BEATS_CHECKPOINT=/x/y.pt") == ("BEATS_CHECKPOINT", "/x/y.pt")
    assert runner.parse_parameter("X=null") == ("X", None)
    with pytest.raises(argparse.ArgumentTypeError):
        runner.parse_parameter("SEED")


def test_missing_data_root_is_reported(tmp_path, capsys):
    code = runner.main(["--profile", "smoke", "--notebooks", "01", "--data-root", str(tmp_path / "nope")])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err


def test_failing_notebook_is_named_with_its_cell(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("PROFILE = 'smoke'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("raise KeyError('boom')")]
    path = tmp_path / "09_broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(runner.NotebookFailed, match=r"09_broken.ipynb failed in cell \d+ .*KeyError"):
        runner.execute_notebook(path, tmp_path / "out" / path.name, {"PROFILE": "smoke"})
    assert (tmp_path / "out" / path.name).exists()
    source = nbformat.read(path, as_version=4)  # never executed in place
    assert all(not cell.get("outputs") for cell in source.cells if cell.cell_type == "code")


@pytest.mark.notebook
def test_runner_twice_gives_identical_summaries(tmp_path):
    out = tmp_path / "run"
    assert runner.main(["--profile", "smoke", "--notebooks", "01", "--output-dir", str(out)]) == 0
    first = (out / "results" / "summary.csv").read_text()
    assert runner.main(["--profile", "smoke", "--notebooks", "01", "--output-dir", str(out)]) == 0
    assert (out / "results" / "summary.csv").read_text() == first
    assert (out / "notebooks" / "01_baseline_autoencoder.ipynb").exists()
    assert "AE-MAHALA" in (out / "results" / "summary.md").read_text()
