"""Notebook 00's helpers: the clip browser driven like a user would, the figures, the picks."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

from asd_utils.data import discover, load_audio  # noqa: E402
from asd_utils.notebook import tour  # noqa: E402


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """Two machine types in DCASE layout; fan has no target anomaly (an empty combination)."""
    root = tmp_path_factory.mktemp("tour")
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    specs = {
        "fan": [("train", "source", "normal", 3), ("train", "target", "normal", 1), ("test", "source", "normal", 2),
                ("test", "source", "anomaly", 2), ("test", "target", "normal", 2)],
        "valve": [("train", "source", "normal", 2), ("test", "source", "normal", 1), ("test", "source", "anomaly", 1),
                  ("test", "target", "normal", 1), ("test", "target", "anomaly", 2)],
    }
    counter = 0
    for machine, rows in specs.items():
        for split, domain, label, n in rows:
            folder = root / "dev_data" / "raw" / machine / split
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(n):
                wave = 0.1 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.01 * rng.standard_normal(t.size)
                name = f"section_00_{domain}_{split}_{label}_{counter:04d}_a_1.wav"
                sf.write(folder / name, wave.astype(np.float32), 16000)
                counter += 1
    return discover(root)


def _matching(index, machine, domain, label, split="test"):
    rows = index[(index["machine"] == machine) & (index["domain"] == domain) & (index["label"] == label)
                 & (index["split"] == split)]
    return list(rows["path"])


def _assert_shows(browser, index, machine, domain, label, split="test"):
    paths = _matching(index, machine, domain, label, split)
    assert [value for _, value in browser.clip.options] == paths
    assert browser.clip.value == paths[0]  # selected without a click
    rendered = browser.rendered
    assert rendered["path"] == paths[0]
    played, rate = sf.read(io.BytesIO(rendered["audio"].data))  # the WAV the browser plays
    assert rate == 16000
    np.testing.assert_allclose(played, load_audio(paths[0]), atol=1e-4)  # not normalised
    assert len(rendered["figure"].axes) == 3  # waveform, spectrogram, colour bar
    kinds = [set(output.get("data", {})) for output in browser.out.outputs]
    assert any("text/html" in k for k in kinds) and any("image/png" in k for k in kinds)


def test_browser_selects_and_shows_a_clip_at_start(index):
    browser = tour.clip_browser(index)
    assert (browser.machine.value, browser.split.value, browser.domain.value, browser.label.value) == (
        "fan", "test", "source", "normal")
    _assert_shows(browser, index, "fan", "source", "normal")
    assert 'src="data:audio/wav;base64,' in browser.rendered["audio"]._repr_html_()


def test_browser_follows_machine_domain_and_label_changes(index):
    browser = tour.clip_browser(index)
    browser.machine.value = "valve"
    _assert_shows(browser, index, "valve", "source", "normal")
    browser.domain.value = "target"
    _assert_shows(browser, index, "valve", "target", "normal")
    browser.label.value = "anomaly"
    _assert_shows(browser, index, "valve", "target", "anomaly")
    # picking another clip by hand shows that clip
    second = _matching(index, "valve", "target", "anomaly")[1]
    browser.clip.value = second
    assert browser.rendered["path"] == second
    # a combination without clips says so, and the next change selects a clip again
    browser.machine.value = "fan"
    assert browser.clip.value is None and browser.rendered is None
    assert browser.out.outputs[0]["text"].startswith("no test clip with this machine / domain / label")
    browser.label.value = "normal"
    _assert_shows(browser, index, "fan", "target", "normal")
    # training clips are listed apart; they are all normal, so the label is fixed there
    browser.label.value = "anomaly"
    browser.split.value = "train"
    assert browser.label.value == "normal" and browser.label.disabled
    _assert_shows(browser, index, "fan", "target", "normal", split="train")
    browser.split.value = "test"
    assert not browser.label.disabled
    _assert_shows(browser, index, "fan", "target", "normal")


def test_browser_draws_once_per_change_and_never_blanks(index):
    browser = tour.clip_browser(index)
    assignments = []

    def record(change):
        assignments.append(change["new"])

    browser.out.observe(record, names="outputs")
    browser.machine.value = "valve"
    browser.domain.value = "target"
    # one replacement per change, each with the player and the figure: no empty state in between
    assert len(assignments) == 2 and all(len(outputs) == 2 for outputs in assignments)


def test_waveform_envelope_keeps_every_extreme():
    wave = np.sin(np.arange(16000) / 7.0).astype(np.float32)
    wave[12345] = 3.0  # a click must survive the reduction
    times, values = tour._envelope(wave, 400)
    assert len(values) == 400 and values.max() == 3.0 and values.min() == wave.min()
    assert np.all(np.diff(times) >= 0) and times[0] >= 0 and times[-1] <= len(wave) / 16000
    short = np.arange(10, dtype=np.float32)
    assert tour._envelope(short, 400)[1] is short


def test_clip_figure_panels_share_the_time_axis_and_width(index):
    path = _matching(index, "fan", "source", "normal")[0]
    fig, wave = tour.clip_figure(path, title="x")
    fig.canvas.draw()
    wave_ax, mel_ax, colorbar_ax = fig.axes[0], fig.axes[1], fig.axes[2]
    top, bottom = wave_ax.get_position(), mel_ax.get_position()
    assert top.x0 == pytest.approx(bottom.x0, abs=1e-3) and top.x1 == pytest.approx(bottom.x1, abs=1e-3)
    assert colorbar_ax.get_position().x0 > bottom.x1  # the colour bar sits beside, not inside
    assert wave_ax.get_xlim() == mel_ax.get_xlim() == pytest.approx((0, len(wave) / 16000))
    plt.close(fig)


def test_normal_vs_anomalous_picks_source_domain_clips(index):
    for seed in range(5):
        picks = tour.pick_normal_anomalous(index, seed=seed)
        assert set(picks["domain"]) == {"source"} and set(picks["split"]) == {"test"}
        assert list(picks["machine"]) == ["fan", "fan", "valve", "valve"]
        assert list(picks["label"]) == ["normal", "anomaly", "normal", "anomaly"]
    fig = tour.normal_vs_anomalous(index, seed=0)
    panels = [ax for ax in fig.axes if ax.get_title()]
    colour_bars = [ax for ax in fig.axes if not ax.get_title()]
    assert len(panels) == 4 and all("(source domain)" in ax.get_title() and "_source_test_" in ax.get_title()
                                    for ax in panels)
    assert all(ax.get_xlabel() == "time (s)" for ax in panels) and panels[0].get_ylabel() == "mel bin"
    assert [ax.get_ylabel() for ax in colour_bars] == ["dB", "dB"]  # one colour bar per machine row
    fig.canvas.draw()  # the two titles of a row do not overlap
    renderer = fig.canvas.get_renderer()
    left, right = (ax.title.get_window_extent(renderer) for ax in panels[:2])
    assert left.x1 < right.x0
    plt.close(fig)
    target_only = index[index["domain"] != "source"]
    with pytest.raises(ValueError, match="no machine type has labelled source-domain"):
        tour.pick_normal_anomalous(target_only)


def test_readme_is_whole_with_headings_nested(tmp_path):
    assert tour.readme_markdown(tmp_path) is None
    text = "# Title\n\n" + "word " * 2000 + "\n## Part\n### Sub\nend\n"
    (tmp_path / "README.md").write_text(text)
    shown = tour.readme_markdown(tmp_path)
    assert shown.startswith("### Title") and "\n#### Part\n##### Sub\nend" in shown
    assert len(shown) == len(text) + 6  # whole: only the six added '#'


def test_target_outside_source_counts_against_the_source_ellipse():
    rng = np.random.default_rng(0)
    source = rng.standard_normal((400, 2)) * [3.0, 1.0]
    inside = np.array([[2.0, 0.0], [0.0, 0.5]])  # within the source spread
    outside = np.array([[0.0, 5.0], [12.0, 0.0], [-9.0, -3.0]])  # beyond it (5 sd up; 4 sd along x)
    xy = np.vstack([source, inside, outside])
    domains = ["source"] * 400 + ["target"] * 5
    assert tour.target_outside_source(xy, domains) == (3, 5)
    assert tour.target_outside_source(source, ["source"] * 400) == (0, 0)
