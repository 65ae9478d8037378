import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from asd_utils.notebook import context  # noqa: E402


def _ctx(tmp_path, synthetic=True):
    return context.RunContext(
        notebook="99_test", profile="smoke", config={}, data_root=tmp_path, synthetic=synthetic, device=None, seed=0,
        results_dir=tmp_path / "results", figures_dir=tmp_path / "figures", cache_dir=tmp_path / "cache",
        index=pd.DataFrame({"machine": ["b", "a", "a"], "split": ["train", "train", "test"]}),
    )


def test_saved_figures_on_synthetic_data_carry_the_caveat(tmp_path):
    ctx = _ctx(tmp_path)
    fig, ax = plt.subplots()
    path = ctx.save_figure(fig, "x", untrained_backbone=True)
    assert path.exists() and path.stat().st_size > 0
    texts = [t.get_text() for t in fig.texts]
    assert texts == ["synthetic data · untrained stand-in backbones — not the reports' results"]
    ctx.save_figure(fig, "y")  # saving twice does not stamp twice
    assert len(fig.texts) == 1


def test_real_data_figures_are_not_stamped_and_notes_say_what_ran(tmp_path):
    ctx = _ctx(tmp_path, synthetic=False)
    fig, _ = plt.subplots()
    ctx.save_figure(fig, "x")
    assert fig.texts == []
    assert ctx.note(untrained_backbone=True) == f"data: {tmp_path.name}; untrained stand-in backbone; profile smoke"
    assert ctx.machines == ["a", "b"]
    assert len(ctx.clips("a", split="train")) == 1


def test_paper_profile_refuses_to_run_without_real_data():
    with pytest.raises(ValueError, match="paper profile runs on the real DCASE 2025"):
        context.start("01_baseline_autoencoder", config="01_baseline", profile="paper")
