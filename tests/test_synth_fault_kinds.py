"""AUC per fault kind from the synthetic dataset's hidden truths, on a hand-built run."""

from __future__ import annotations

import pandas as pd
import pytest

from asd_utils.evaluation.submission import submission_folder_name
from asd_utils.synth.fault_kinds import (
    fault_kind_aucs,
    fault_kind_heatmap,
    fault_kind_table,
    read_fault_truth,
    run_fault_kind_aucs,
)

META_HEADER = "machine,machine_type,split,file_name,domain,label,anomaly_kind,severity,snr_db,gain_db,hall,attributes\n"


def _name(domain: str, label: str, i: int) -> str:
    return f"section_00_{domain}_test_{label}_{i:04d}_noAttribute.wav"


def _hand_built(tmp_path):
    """fan, section 00: 4 normals (2 per domain) and 4 anomalies, 2 'impacts' and 2 'squeal'.

    Scores of system "A": normals 0.1 0.2 (source) 0.3 0.4 (target); impacts 0.9 (source) 0.35
    (target); squeal 0.15 (source) 0.05 (target). By hand, pooled over domains:
    impacts: 0.9 beats 4 normals, 0.35 beats 0.1 0.2 0.3 -> 7 / 8 = 0.875;
    squeal: 0.15 beats 0.1, 0.05 beats none -> 1 / 8 = 0.125.
    Source only: impacts 0.9 vs {0.1, 0.2} -> 1.0; squeal 0.15 vs {0.1, 0.2} -> 0.5.
    Target only: impacts 0.35 vs {0.3, 0.4} -> 0.5; squeal 0.05 -> 0.0.
    """
    clips = [("source", "normal", "", 0.1), ("source", "normal", "", 0.2), ("target", "normal", "", 0.3),
             ("target", "normal", "", 0.4), ("source", "anomaly", "impacts", 0.9),
             ("target", "anomaly", "impacts", 0.35), ("source", "anomaly", "squeal", 0.15),
             ("target", "anomaly", "squeal", 0.05)]
    rows = [f"fan,fan,test,{_name(d, lab, i)},{d},{lab},{k},{0.5 if k else 0.0},3.0,0.0,A,x"
            for i, (d, lab, k, _) in enumerate(clips)]
    rows.append("fan,fan,train,section_00_source_train_normal_0100_x.wav,source,normal,,0.0,3.0,0.0,A,x")
    (tmp_path / "synth_metadata.csv").write_text(META_HEADER + "\n".join(rows) + "\n")
    system_dir = tmp_path / "results" / "submissions" / "01_baseline" / submission_folder_name("A (x)")
    system_dir.mkdir(parents=True)
    (system_dir / "anomaly_score_fan_section_00_test.csv").write_text(
        "".join(f"{_name(d, lab, i)},{s}\n" for i, (d, lab, _, s) in enumerate(clips)))
    return tmp_path


def test_auc_per_fault_kind_by_hand(tmp_path):
    root = _hand_built(tmp_path)
    tidy = pd.DataFrame({"notebook": ["01_baseline"], "system": ["A (x)"]})
    aucs = run_fault_kind_aucs(root / "results", root, tidy=tidy)
    got = aucs.set_index("fault_kind")
    assert list(aucs["system"].unique()) == ["A (x)"]
    assert got.loc["impacts", "auc"] == pytest.approx(0.875)
    assert got.loc["squeal", "auc"] == pytest.approx(0.125)
    assert got.loc["impacts", "n_anomalies"] == 2 and got.loc["impacts", "n_normals"] == 4
    for domain, want in (("source", {"impacts": 1.0, "squeal": 0.5}), ("target", {"impacts": 0.5, "squeal": 0.0})):
        by_domain = run_fault_kind_aucs(root / "results", root, tidy=tidy, domain=domain).set_index("fault_kind")
        assert by_domain["auc"].to_dict() == pytest.approx(want)
        assert (by_domain["n_normals"] == 2).all()


def test_table_and_heatmap(tmp_path):
    root = _hand_built(tmp_path)
    aucs = run_fault_kind_aucs(root / "results", root)
    second = aucs.assign(machine="valve", auc=[0.625, 0.375])  # a second type: the table averages types
    table = fault_kind_table(pd.concat([aucs, second]))
    assert table.loc[("01_baseline", "A__x_")].to_dict() == pytest.approx({"impacts": 0.75, "squeal": 0.25})
    fig = fault_kind_heatmap(aucs)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0.12", "0.88"]


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="synth_metadata.csv"):
        read_fault_truth(tmp_path)
    root = _hand_built(tmp_path)
    truth = read_fault_truth(root)
    assert len(truth) == 8 and set(truth["fault_kind"]) == {"", "impacts", "squeal"}
    scores = pd.DataFrame({"notebook": ["n"], "system": ["s"], "machine": ["fan"], "section": ["00"],
                           "file_name": ["section_00_source_test_normal_9999_x.wav"], "score": [1.0]})
    with pytest.raises(ValueError, match="fan/section_00_source_test_normal_9999_x.wav"):
        fault_kind_aucs(scores, truth)
    with pytest.raises(ValueError, match="domain"):
        fault_kind_aucs(scores, truth, domain="both")
    assert fault_kind_aucs(scores.iloc[:0], truth).empty
    assert fault_kind_table(fault_kind_aucs(scores.iloc[:0], truth)).empty
