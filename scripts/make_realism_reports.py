"""Regenerate the committed realism reports of the synthetic default from the generator itself.

    python scripts/make_realism_reports.py WORK [--seeds 0 1 2]

Generates the `default` profile's roots under the folder ``WORK`` (the realistic world for every
seed of ``--seeds``, the envelope world for the first) and writes, under ``benchmarks/results/``:

- ``realism_synthetic_realistic.{md,csv,json}`` and ``realism_synthetic_envelope.{md,csv,json}``:
  the realism report (:mod:`asd_utils.synth.realism`) of the first seed's test clips;
- ``synthetic_realism_fault_floor.csv``: the anomaly shift with and without the faults
  (:mod:`asd_utils.synth.fault_floor`) of the first seed's realistic root;
- ``realism_synthetic_realistic_seeds.csv``: every statistic of every seed's realistic root, one row
  per seed, machine type and statistic (``seed, group, statistic, value``), so the spread of each
  statistic over generator seeds can be read beside its value at seed 0.

It reads no method's score; the labels it reads are the generator's own. A root already generated
in ``WORK`` with the same manifest is reused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asd_utils.storage.atomic import atomic_write_csv  # noqa: E402
from asd_utils.synth.fault_floor import floor_table  # noqa: E402
from asd_utils.synth.generate import ensure_dataset  # noqa: E402
from asd_utils.synth.realism import realism_table, write_report  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def seed_root(work: Path, seed: int, variant: str = "realistic") -> Path:
    """The `default` profile's root of ``variant`` and generator ``seed`` under ``work``, generated
    on first use (``WORK/<variant>_seed<seed>``; ``scripts/ae_over_seeds.py`` reuses these roots)."""
    return ensure_dataset("default", Path(work) / f"{variant}_seed{seed}", seed=seed, variant=variant)


def _report(root: Path, variant: str, seed: int, out: Path) -> pd.DataFrame:
    table, details = realism_table(root, split="test")
    label = f"synthetic default, variant {variant}, seed {seed}"
    meta = {"root": label, "split": "test",
            "command": "python -m asd_utils.synth.realism ROOT --split test "
                       f"(ROOT = python -m asd_utils.synth ROOT --profile default --variant {variant} --seed {seed})"}
    write_report(table, details, out, f"synthetic_{variant}",
                 title=f"Realism statistics: synthetic default, variant {variant} (test clips)", meta=meta)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/make_realism_reports.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="folder for the generated roots (about 0.5 GB per root)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    first, rows = args.seeds[0], []
    for seed in args.seeds:
        root = seed_root(args.work, seed)
        if seed == first:
            table = _report(root, "realistic", seed, args.out)
            floor = floor_table(root)
            atomic_write_csv(args.out / "synthetic_realism_fault_floor.csv", floor.round(4), index=False)
            print(floor.to_string(index=False))
        else:
            table, _ = realism_table(root, split="test")
        tidy = table.rename_axis("statistic").reset_index().melt(id_vars="statistic", var_name="group")
        rows.append(tidy.assign(seed=seed))
        print(f"seed {seed}: realism statistics of {root.name}")
    seeds = pd.concat(rows)[["seed", "group", "statistic", "value"]]
    atomic_write_csv(args.out / "realism_synthetic_realistic_seeds.csv", seeds, float_format="%.4f", index=False)
    envelope = seed_root(args.work, first, "envelope")
    _report(envelope, "envelope", first, args.out)
    print(f"wrote the realism reports under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
