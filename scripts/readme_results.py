"""Regenerate the README's results table, its figure and the full table of docs/default_run.md
from the committed summary of the default run.

    python scripts/readme_results.py                                   # from the committed summary
    python scripts/readme_results.py --from results/default/summary.csv  # after a new default run

``--from`` first copies a run's ``summary.csv`` (written by ``python -m asd_utils.run.runner``) to
``benchmarks/results/default_summary.csv``, the committed file every number of the README's
results section names. Then it rewrites, between ``<!-- results-table:start -->`` and
``<!-- results-table:end -->`` markers, the per-report table of README.md and the per-system table
of docs/default_run.md, and draws ``docs/figures/default_run_systems.png`` (every system with its
bootstrap interval). Nothing else in those files is touched.

Which system is shown per report is a display choice made on the test results of synthetic data
(the highest official score of the report's notebook); it shapes no score.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asd_utils.evaluation import reported  # noqa: E402
from asd_utils.notebook import catalogue  # noqa: E402
from asd_utils.storage import atomic  # noqa: E402

SUMMARY = ROOT / "benchmarks" / "results" / "default_summary.csv"
FIGURE = ROOT / "docs" / "figures" / "default_run_systems.png"
SUMMARY_COLUMNS = ["notebook", "system", "official_score", "ci_low", "ci_high", "note"]
START, END = "<!-- results-table:start -->", "<!-- results-table:end -->"

# report id -> (name in the tables, papers/ page, the data its own numbers were measured on)
REPORTS = {
    "baseline": ("official AE baseline", "papers/baseline_ae.md", "DCASE 2025 dev"),
    "000": ("GISP-HEU", "papers/000_gisp_heu.md", "DCASE 2025 dev"),
    "001": ("MYPS", "papers/001_myps.md", "DCASE 2025 dev"),
    "002": ("NIVIC", "papers/002_nivic.md", "DCASE 2025 dev"),
    "003": ("XJU", "papers/003_xju.md", "DCASE 2025 dev"),
    "004": ("IOA-CAS", "papers/004_ioa_cas.md", "DCASE 2024 dev"),
}


def read_summary(path: Path) -> pd.DataFrame:
    """The runner's ``summary.csv``: one row per (notebook, system), scores as fractions.

    Raises ValueError naming the file when a column is missing.
    """
    frame = pd.read_csv(path)
    missing = [c for c in SUMMARY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected a runner summary.csv with {SUMMARY_COLUMNS}")
    return frame


def reported_official_score(table: pd.DataFrame, report: str, system: str) -> float:
    """A report's own official score of one of its systems, in percent; NaN if it prints none.

    table: :func:`asd_utils.evaluation.reported.load_all_reported`. The report's printed summary (``hmean``
    on an ``All``/``Total`` row) when it has one, else the official definition recomputed from its
    per-machine rows: the harmonic mean of every AUC-s, AUC-t and pAUC.
    """
    rows = table[(table["report"] == report) & (table["system"] == system)]
    summary = rows["machine"].str.lower().isin(reported.SUMMARY_MACHINES)
    printed = rows[summary & (rows["metric"] == "hmean")]["value"]
    if len(printed):
        return float(printed.iloc[0])
    values = rows[~summary & rows["metric"].isin(["auc_source", "auc_target", "pauc"])]["value"].to_numpy(float)
    if not len(values):
        return float("nan")
    return float(len(values) / np.sum(1.0 / values))


def _own_number(card, reported_table: pd.DataFrame) -> tuple[float, str]:
    """The report's own official score of the row a system reproduces, and the report that prints
    it (first in ``reported_as`` order); (NaN, "") when no report prints one."""
    for report, printed_name in card.reported_as if card else ():
        number = reported_official_score(reported_table, report, printed_name)
        if np.isfinite(number):
            return number, report
    return float("nan"), ""


def best_per_report(summary: pd.DataFrame, reported_table: pd.DataFrame) -> pd.DataFrame:
    """Per report: among the systems of its notebook that reproduce a row the report prints, the
    one with the highest official score here, its interval and the report's own number for it.

    A notebook none of whose systems has a printed counterpart shows its best system with NaN.
    Returns columns ``report, name, notebook, system, score, ci_low, ci_high, reported,
    reported_in, reported_data, page`` (scores in percent), in notebook order. Notebooks that
    reproduce no report (no catalogue entry, e.g. 08's pretraining) are left out.
    """
    rows = []
    for notebook, group in summary.groupby("notebook", sort=True):
        cards = [catalogue.lookup(notebook, system) for system in group["system"]]
        own = [_own_number(card, reported_table) for card in cards]
        ranked = group.assign(_card=cards, _own=[n for n, _ in own], _in=[r for _, r in own])
        ranked = ranked[[c is not None and c.report in REPORTS for c in ranked["_card"]]]
        if ranked.empty:
            continue
        printed = ranked[np.isfinite(ranked["_own"].to_numpy(float))]
        candidates = printed if len(printed) else ranked
        best = candidates.sort_values("official_score", ascending=False, kind="stable").iloc[0]
        name, page, data = REPORTS[best["_card"].report]
        rows.append({"report": best["_card"].report, "name": name, "notebook": notebook, "system": best["system"],
                     "score": 100 * best["official_score"], "ci_low": 100 * best["ci_low"],
                     "ci_high": 100 * best["ci_high"], "reported": best["_own"], "reported_in": best["_in"],
                     "reported_data": data if best["_in"] else "", "page": page})
    return pd.DataFrame(rows)


def readme_table(best: pd.DataFrame) -> str:
    """The README's Markdown table (one row per report)."""
    lines = ["| report | notebook | best system here | score here [95 % interval] | the report's own score |",
             "|---|---|---|---:|---:|"]
    for row in best.itertuples():
        own = f"{row.reported:.2f} ({row.reported_data})" if np.isfinite(row.reported) else "not printed"
        lines.append(f"| [{row.name}]({row.page}) | {row.notebook[:2]} | {row.system} | "
                     f"{row.score:.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}] | {own} |")
    return "\n".join(lines)


def full_table(summary: pd.DataFrame) -> str:
    """Every system of the summary as a Markdown table (fractions, as the runner writes them)."""
    columns = ["notebook", "system", "auc_source", "auc_target", "pauc", "official_score", "ci_low", "ci_high",
               "note"]
    present = [c for c in columns if c in summary.columns]
    lines = ["| " + " | ".join(present) + " |",
             "|" + "|".join("---:" if summary[c].dtype.kind == "f" else "---" for c in present) + "|"]
    for _, row in summary[present].iterrows():
        cells = [f"{row[c]:.4f}" if summary[c].dtype.kind == "f" else str(row[c]) for c in present]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_between_markers(text: str, block: str, *, where: str) -> str:
    """Put ``block`` between the results-table markers of ``text``; ValueError naming ``where``
    when the markers are missing or repeated."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), flags=re.S)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"{where}: expected exactly one {START} ... {END} block")
    return pattern.sub(lambda _: f"{START}\n{block}\n{END}", text)


def draw_figure(summary: pd.DataFrame, path: Path) -> Path:
    """Every system's official score with its bootstrap interval (``bootstrap.interval_plot``)."""
    import matplotlib

    matplotlib.use("Agg")
    from asd_utils.evaluation.bootstrap import interval_plot

    short = summary["system"].str.replace("stand-in pretrained by the compendium on synthetic audio",
                                          "pretrained stand-in", regex=False)
    frame = summary.assign(label=summary["notebook"].str[:2] + " " + short)
    fig = interval_plot(frame, title="Default run: synthetic data, stand-in backbones - not the reports' results")
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight", metadata={"Software": None})
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="a run's summary.csv to commit first")
    parser.add_argument("--summary", type=Path, default=SUMMARY, help="the committed summary (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.source is not None:
        atomic.atomic_write_csv(args.summary, read_summary(args.source), index=False)
    summary = read_summary(args.summary)
    best = best_per_report(summary, reported.load_all_reported(ROOT / "papers"))
    for target, block in ((ROOT / "README.md", readme_table(best)),
                          (ROOT / "docs" / "default_run.md", full_table(summary))):
        atomic.atomic_write_text(target, replace_between_markers(target.read_text(), block, where=str(target)))
        print(f"updated {target.relative_to(ROOT)}")
    print(f"drew {draw_figure(summary, FIGURE).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
