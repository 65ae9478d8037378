"""The runner's ``--channel``: parsed, kept in the plan, and handed to the kernels as ASD_CHANNEL."""

from __future__ import annotations

import os

import pytest

from asd_utils.data import CHANNEL_ENV
from asd_utils.run import runner


def test_channel_option_parsed_into_the_plan(tmp_path):
    args = runner.make_parser().parse_args(["--profile", "smoke", "--data-root", str(tmp_path), "--notebooks", "01",
                                            "--channel", "noise_aware"])
    assert runner.build_plan(args).channel == "noise_aware"
    args = runner.make_parser().parse_args(["--profile", "smoke", "--data-root", str(tmp_path), "--notebooks", "01"])
    assert runner.build_plan(args).channel == "near"
    with pytest.raises(SystemExit):
        runner.make_parser().parse_args(["--channel", "left"])


def test_kernels_see_the_channel_and_it_is_restored(tmp_path, monkeypatch):
    monkeypatch.delenv(CHANNEL_ENV, raising=False)
    seen = []
    monkeypatch.setattr(runner, "_run_one_at_a_time", lambda *a, **k: seen.append(os.environ.get(CHANNEL_ENV)))
    (tmp_path / "results").mkdir()
    plan = runner.RunPlan(profile="smoke", notebooks=[], data_root=str(tmp_path), notebooks_out=tmp_path,
                          results_dir=tmp_path / "results", output_dir=str(tmp_path), kernel=None,
                          extra_parameters={}, channel="far")
    runner.run(plan, log=lambda *a, **k: None, terminal=False)
    assert seen == ["far"]
    assert CHANNEL_ENV not in os.environ
