import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from asd_utils.run import execute, runner


def test_notebooks_are_found_in_number_order_and_the_comparison_is_numbered_last(tmp_path):
    names = [p.stem for p in runner.available_notebooks()]
    assert names[0].startswith("00_") and names[-1] == "08_comparison"
    assert names[:-1] == sorted(names[:-1])
    for name in ("07_pretraining", "08_comparison", "01_a", "notes"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    assert [p.stem for p in runner.available_notebooks(tmp_path)] == ["01_a", "07_pretraining", "08_comparison"]


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
        execute.execute_notebook(path, tmp_path / "out" / path.name, {"PROFILE": "smoke"})
    assert (tmp_path / "out" / path.name).exists() and not (tmp_path / "out" / "09_broken.stacks.txt").exists()
    source = nbformat.read(path, as_version=4)  # never executed in place
    assert all(not cell.get("outputs") for cell in source.cells if cell.cell_type == "code")


def test_cell_timeout_by_profile_and_environment(monkeypatch):
    monkeypatch.delenv(execute.CELL_TIMEOUT_ENV, raising=False)
    assert execute.cell_timeout("smoke") == 600 and execute.cell_timeout("default") == 3600
    assert execute.cell_timeout("paper") is None and execute.cell_timeout(None) is None
    monkeypatch.setenv(execute.CELL_TIMEOUT_ENV, "42.5")
    assert execute.cell_timeout("paper") == 42.5
    for off in ("0", "none", "None"):
        monkeypatch.setenv(execute.CELL_TIMEOUT_ENV, off)
        assert execute.cell_timeout("smoke") is None
    for bad in ("soon", "-3"):
        monkeypatch.setenv(execute.CELL_TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match="ASD_CELL_TIMEOUT='.*': expected a number of seconds"):
            execute.cell_timeout("smoke")


def _sleepy_notebook(path, body):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("PROFILE = 'smoke'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


def test_a_hung_cell_is_retried_once_and_then_fails_with_the_kernels_stacks(tmp_path, monkeypatch):
    """A cell that never answers does not stall the run: after the time limit the notebook runs once
    more, and a second hang fails with the kernel's own stack dump (written by the watchdog)."""
    monkeypatch.setenv(execute.CELL_TIMEOUT_ENV, "4")
    path = _sleepy_notebook(tmp_path / "09_hangs.ipynb",
                            "import time\ndef stuck_here():\n    time.sleep(120)\nstuck_here()")
    warnings = []
    with pytest.raises(runner.NotebookFailed) as failure:
        execute.execute_notebook(path, tmp_path / "out" / path.name, {"PROFILE": "smoke"}, log=warnings.append)
    message = str(failure.value)
    assert "09_hangs.ipynb: no reply from the kernel within 4 s" in message and "2 execution(s)" in message
    assert "stuck_here" in message and "Thread 0x" in message      # faulthandler's dump of the kernel
    assert len(warnings) == 1 and "executing it again" in warnings[0] and "stuck_here" in warnings[0]


def test_a_kernel_that_hangs_once_is_executed_again_and_succeeds(tmp_path, monkeypatch):
    monkeypatch.setenv(execute.CELL_TIMEOUT_ENV, "4")
    marker = tmp_path / "hung_once"
    path = _sleepy_notebook(tmp_path / "09_flaky.ipynb",
                            f"import pathlib, time\nmarker = pathlib.Path({str(marker)!r})\n"
                            "if not marker.exists():\n    marker.touch()\n    time.sleep(120)\nprint('ran')")
    warnings = []
    out = tmp_path / "out" / path.name
    execute.execute_notebook(path, out, {"PROFILE": "smoke"}, log=warnings.append)
    assert len(warnings) == 1 and "no reply from the kernel within 4 s" in warnings[0]
    assert "ran" in out.read_text() and not out.with_name("09_flaky.stacks.txt").exists()


def test_a_timeout_after_the_last_cell_counts_as_a_hang_and_other_assertions_do_not(tmp_path, monkeypatch):
    """nbclient times out its request after the last cell with an assertion in its timeout handler;
    the runner treats exactly that as a hang (executed again), and lets any other assertion through."""
    import papermill

    calls = []

    def _async_handle_timeout():  # named like nbclient's handler
        assert None is not None

    def timing_out(*args, **kwargs):
        calls.append(1)
        _async_handle_timeout()

    monkeypatch.setattr(papermill, "execute_notebook", timing_out)
    warnings = []
    path = _sleepy_notebook(tmp_path / "09_quiet.ipynb", "x = 1")
    with pytest.raises(runner.NotebookFailed, match="no reply to the request after the last cell"):
        execute.execute_notebook(path, tmp_path / "out" / path.name, {"PROFILE": "smoke"}, log=warnings.append)
    assert len(calls) == 2 and len(warnings) == 1

    def failing(*args, **kwargs):
        raise AssertionError("a bug elsewhere")

    monkeypatch.setattr(papermill, "execute_notebook", failing)
    with pytest.raises(AssertionError, match="a bug elsewhere"):
        execute.execute_notebook(path, tmp_path / "out" / path.name, {"PROFILE": "smoke"}, log=warnings.append)


def test_watchdog_writes_nothing_without_its_environment(tmp_path, monkeypatch):
    from asd_utils.run import kernel_watchdog

    monkeypatch.delenv(kernel_watchdog.SECONDS_ENV, raising=False)

    class Shell:
        registered = []
        events = type("E", (), {"register": lambda self, *a: Shell.registered.append(a)})()

    kernel_watchdog.load_ipython_extension(Shell())
    assert Shell.registered == [] and "file" not in kernel_watchdog._state


def _tiny_notebook(path):
    """A notebook with a fast text-mode tqdm bar (1500 updates), a loud warning and an env probe."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("PROFILE = 'smoke'\nDATA_ROOT = None\nOUTPUT_DIR = None",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import os, sys, time\nfrom tqdm.std import tqdm\n"
            "for _ in tqdm(range(1500), desc='phase', file=sys.stderr):\n    time.sleep(0.001)\n"
            "print('TQDM_MININTERVAL =', os.environ.get('TQDM_MININTERVAL'))"),
        nbformat.v4.new_code_cell("from asd_utils.notebook import context\ncontext.loud_warning('the paper profile "
                                  "lacks   its extra roots')"),
    ]
    nbformat.write(nb, path)
    return path


def _stream_text(executed, name):
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.get("output_type") == "stream" and o.get("name") == name)


ZMQ_SHUTDOWN_ABORT = "Assertion failed: pfd.revents & POLLIN (src/signaler.cpp:238)\n"


@pytest.mark.notebook
def test_runner_log_has_one_line_per_phase_no_bar_storm_and_no_tcp_warning(tmp_path):
    """The runner with stdout/stderr redirected to a file, as ``make reproduce > log`` does."""
    import subprocess
    import sys

    notebook = _tiny_notebook(tmp_path / "09_tiny.ipynb")
    script = (
        "from pathlib import Path\nfrom asd_utils.run import runner\n"
        f"plan = runner.RunPlan(profile='smoke', notebooks=[Path({str(notebook)!r})], data_root={str(tmp_path)!r}, "
        f"notebooks_out=Path({str(tmp_path / 'out')!r}), results_dir=Path({str(tmp_path / 'results')!r}), "
        "output_dir=None, kernel=None, extra_parameters={})\nrunner.run(plan)\n"
    )
    (tmp_path / "results").mkdir()
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log:
        done = subprocess.run([sys.executable, "-c", script], stdout=log, stderr=subprocess.STDOUT, timeout=300)
    # A kernel shares the runner's stderr. Rarely, libzmq aborts inside an already finished kernel as
    # it shuts down and prints this one assertion line there; the run itself is complete (return code
    # 0, results written). It is the kernel's line, not the runner's, so it is left out of the check.
    log_text = log_path.read_text().replace(ZMQ_SHUTDOWN_ABORT, "")
    assert done.returncode == 0, log_text
    assert "\r" not in log_text
    assert "running over TCP" not in log_text
    lines = log_text.splitlines()
    assert [line.split(" -> ")[0].rsplit(" in ", 1)[0] for line in lines[:2]] == [
        f"data: {tmp_path}", "[1/1] 09_tiny ... done"]
    assert lines[2] == "  WARNING (09_tiny): the paper profile lacks its extra roots"
    assert lines[3].startswith("all 1 notebooks done in") and len(lines) == 4
    # the kernel got the log settings: the 1500-step bar drew its first and last state only
    executed = tmp_path / "out" / "09_tiny.ipynb"
    assert "TQDM_MININTERVAL = 3600" in _stream_text(executed, "stdout")
    bar = _stream_text(executed, "stderr")
    assert "1500/1500" in bar and bar.count("\r") <= 3


@pytest.mark.notebook
def test_runner_in_a_terminal_keeps_live_progress(tmp_path):
    """For a person at a terminal the kernel is left alone: the same bar redraws many times."""
    notebook = _tiny_notebook(tmp_path / "09_tiny.ipynb")
    executed = tmp_path / "out" / notebook.name
    execute.execute_notebook(notebook, executed, {"PROFILE": "smoke"}, terminal=True)
    assert "TQDM_MININTERVAL = None" in _stream_text(executed, "stdout")
    # the bar showed states between its first and its last (the loop lasts >= 1.5 s, tqdm redraws
    # every 0.1 s), however loaded the machine: counted by state, not by number of redraws
    states = [int(s.split("/1500")[0].split("|")[-1].strip()) for s in _stream_text(executed, "stderr").split("\r")
              if "/1500" in s]
    assert any(0 < n < 1500 for n in states) and states[-1] == 1500
    assert runner.notebook_warnings(executed) == ["the paper profile lacks its extra roots"]
    assert runner.notebook_warnings(tmp_path / "missing.ipynb") == []


def test_environment_is_restored_and_the_synthetic_data_bar_follows_the_terminal(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("TQDM_MAXINTERVAL", "7")
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    with execute.environment(execute.LOG_TQDM_ENV):
        assert os.environ["TQDM_MININTERVAL"] == "3600" and os.environ["TQDM_MAXINTERVAL"] == "3600"
    assert "TQDM_MININTERVAL" not in os.environ and os.environ["TQDM_MAXINTERVAL"] == "7"

    import asd_utils.synth

    calls = []
    monkeypatch.setattr(asd_utils.synth, "ensure_dataset",
                        lambda profile, **kw: calls.append((profile, kw)) or tmp_path)
    (tmp_path / "results").mkdir()
    plan = runner.RunPlan(profile="smoke", notebooks=[], data_root=None, notebooks_out=tmp_path / "nb",
                          results_dir=tmp_path / "results", output_dir=None, kernel=None, extra_parameters={})
    lines = []
    runner.run(plan, log=lambda *a, **k: lines.append(" ".join(map(str, a))), terminal=False)
    runner.run(plan, log=lambda *a, **k: None, terminal=True)
    assert calls == [("smoke", {"progress": False}), ("smoke", {"progress": True})]
    assert lines[0].startswith(f"data: synthetic dataset at {tmp_path}")


def _notebook_with(path, source, reads_results_of=None):
    """A notebook whose one code cell (after the parameters) is ``source``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if reads_results_of is not None:
        nb.metadata["compendium"] = {"reads_results_of": reads_results_of}
    nb.cells = [nbformat.v4.new_code_cell("PROFILE = 'smoke'\nDATA_ROOT = None\nOUTPUT_DIR = None",
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)
    return path


def test_prerequisites_come_from_the_metadata_and_the_comparison_waits_for_all(tmp_path):
    first = _notebook_with(tmp_path / "01_a.ipynb", "x = 1")
    second = _notebook_with(tmp_path / "02_b.ipynb", "x = 1", reads_results_of=["01", "05"])
    third = _notebook_with(tmp_path / "03_c.ipynb", "x = 1")
    comparison = _notebook_with(tmp_path / "08_comparison.ipynb", "x = 1")
    plan = [first, second, third, comparison]
    assert runner.notebook_prerequisites(first, plan) == []
    assert runner.notebook_prerequisites(second, plan) == [first]  # 05 is not in the plan: not waited for
    assert runner.notebook_prerequisites(comparison, plan) == [first, second, third]
    bad = _notebook_with(tmp_path / "04_d.ipynb", "x = 1", reads_results_of="01")
    with pytest.raises(ValueError, match=r"04_d.ipynb: metadata compendium.reads_results_of must be a list"):
        runner.notebook_prerequisites(bad, plan)
    # the compendium's own notebooks that compare against the autoencoder wait for it
    notebooks = runner.available_notebooks()
    by_number = {runner.notebook_number(p): p for p in notebooks}
    for number in ("03", "04", "06"):
        assert runner.notebook_prerequisites(by_number[number], notebooks) == [by_number["01"]]


def test_jobs_must_be_a_whole_number_of_at_least_one():
    assert runner.parse_jobs("2") == 2
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number"):
            runner.parse_jobs(bad)
    assert runner.make_parser().parse_args([]).jobs == 1


def _side_by_side_plan(tmp_path, notebooks, jobs=2):
    (tmp_path / "results").mkdir(exist_ok=True)
    return runner.RunPlan(profile="smoke", notebooks=notebooks, data_root=str(tmp_path),
                          notebooks_out=tmp_path / "out", results_dir=tmp_path / "results", output_dir=None,
                          kernel=None, extra_parameters={}, jobs=jobs)


@pytest.mark.notebook
def test_side_by_side_run_overlaps_independent_notebooks_and_waits_for_prerequisites(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    stamp = "import time, pathlib\npathlib.Path({!r}).write_text(repr((time.time(), {})))"
    # 01 ends only once 03 has started: one at a time, it would give up after 540 s (a liveness guard
    # under the smoke cell limit, not a speed check) and fail
    waits_for_03 = (f"deadline = time.time() + 540\nwhile not pathlib.Path({str(marks / '03.start')!r}).exists():\n"
                    "    assert time.time() < deadline, '03 never ran beside 01'\n    time.sleep(0.1)\n")
    slow = _notebook_with(tmp_path / "01_slow.ipynb",
                          stamp.format(str(marks / "01.start"), "0") + "\n" + waits_for_03
                          + stamp.format(str(marks / "01.end"), "0"))
    reader = _notebook_with(tmp_path / "02_reader.ipynb",
                            "import pathlib\n"
                            f"assert pathlib.Path({str(marks / '01.end')!r}).exists(), 'started before 01 ended'\n"
                            + stamp.format(str(marks / "02.start"), "0"), reads_results_of=["01"])
    independent = _notebook_with(tmp_path / "03_independent.ipynb", stamp.format(str(marks / "03.start"), "0"))
    lines = []
    runner.run(_side_by_side_plan(tmp_path, [slow, reader, independent]), log=lambda m, **_: lines.append(m))
    when = {p.name: eval(p.read_text())[0] for p in marks.iterdir()}
    assert when["03.start"] < when["01.end"]  # ran beside the slow one
    assert when["02.start"] > when["01.end"]  # waited for the notebook it reads
    assert lines[0] == f"data: {tmp_path}" and lines[-1].startswith("all 3 notebooks done in")
    events = [line.split(" -> ")[0].rsplit(" in ", 1)[0] for line in lines[1:-1]]
    assert events[:2] == ["[1/3] 01_slow started", "[3/3] 03_independent started"]
    assert events.index("[1/3] 01_slow done") < events.index("[2/3] 02_reader started")
    assert sorted(events) == sorted([f"[{i}/3] {n} {e}" for i, n in enumerate(
        ["01_slow", "02_reader", "03_independent"], 1) for e in ("started", "done")])
    assert all((tmp_path / "out" / p.name).exists() for p in (slow, reader, independent))


@pytest.mark.notebook
def test_side_by_side_failure_starts_nothing_more_and_names_the_notebook(tmp_path):
    broken = _notebook_with(tmp_path / "01_broken.ipynb", "raise KeyError('boom')")
    dependent = _notebook_with(tmp_path / "02_dependent.ipynb", "x = 1", reads_results_of=["01"])
    beside = _notebook_with(tmp_path / "03_beside.ipynb", "import time\ntime.sleep(2)")
    lines = []
    with pytest.raises(runner.NotebookFailed, match=r"01_broken.ipynb failed in cell \d+ .*KeyError"):
        runner.run(_side_by_side_plan(tmp_path, [broken, dependent, beside]), log=lambda m, **_: lines.append(m))
    assert any(line.startswith("[1/3] 01_broken FAILED after") for line in lines)
    assert any(line.startswith("[3/3] 03_beside done in") for line in lines)  # already running: finished
    assert lines[-1] == "not started after the failure: 02_dependent"
    assert not (tmp_path / "out" / dependent.name).exists()


def test_side_by_side_notebooks_that_wait_for_each_other_are_an_error(tmp_path):
    first = _notebook_with(tmp_path / "01_a.ipynb", "x = 1", reads_results_of=["02"])
    second = _notebook_with(tmp_path / "02_b.ipynb", "x = 1", reads_results_of=["01"])
    with pytest.raises(ValueError, match=r"can never start: 01_a \(after 02_b\), 02_b \(after 01_a\)"):
        runner.run(_side_by_side_plan(tmp_path, [first, second]), log=lambda *a, **k: None)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("module", ["asd_utils.run.runner", "asd_utils.run.execute"])
def test_a_side_by_side_worker_imports_no_torch(module):
    """Each side-by-side worker is spawned: it imports the main module (the runner, under
    ``python -m asd_utils.run.runner``) and the execute module before it starts its notebook.
    With torch and the generator at the runner's top, that cost a cold default run 35 s."""
    probe = (f"import sys, {module}; heavy = sorted(m for m in ('torch', 'asd_utils.synth', "
             "'asd_utils.evaluation', 'asd_utils.notebook', 'asd_utils.training') if m in sys.modules); "
             "print(','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == ""
