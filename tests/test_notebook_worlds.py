"""Both synthetic variants side by side (the dataset tour's comparison)."""

from __future__ import annotations

import pytest

from asd_utils.notebook.worlds import example_clips, variant_realism_tables, variant_roots, variant_spectrograms
from asd_utils.synth import VARIANTS, read_manifest


def test_variant_roots_clips_and_figure(tmp_path):
    roots = variant_roots("valve", "smoke", folder=tmp_path)
    assert list(roots) == list(VARIANTS)
    for variant, root in roots.items():
        assert root == tmp_path / f"synth_smoke_{variant}_valve" and read_manifest(root)["variant"] == variant
    assert variant_roots("valve", "smoke", folder=tmp_path) == roots  # reused, not regenerated
    clips = example_clips(roots["realistic"], "valve")
    assert clips["normal"]["label"] == "normal" and clips["anomaly"]["label"] == "anomaly"
    assert clips["anomaly"]["anomaly_kind"] in {"impacts", "rubbing", "modulation", "squeal"}
    with pytest.raises(ValueError, match="no source test clip of machine 'fan'"):
        example_clips(roots["realistic"], "fan")
    fig = variant_spectrograms(roots, "valve")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 4 and titles[0].startswith("envelope: valve source, normal")
    assert titles[3].startswith(f"realistic: valve source, {clips['anomaly']['anomaly_kind']}")
    pytest.importorskip("asd_utils.synth.realism")
    table = variant_realism_tables(roots)
    assert list(table.columns) == [(v, "valve") for v in VARIANTS]
