"""Diagnostic (issue 9): what a per-domain distance scale would do to notebook 06's K-Means score.

Run after a `make reproduce` of the default profile. It reads notebook 06's cached three-subnetwork
embeddings and scores every machine type and section twice:

- **plain**, as the notebook does: cosine distance to the nearest centre, centres = k-means of the
  source training clips (the profile's ``scoring.kmeans``) + every target training clip;
- **per-domain scaled**, a step that none of the five reports names: the distance to the source
  centres is divided by its typical value on source training clips that did not make the centres
  (median over a 2-fold split), the distance to the nearest target training clip by the median
  leave-one-out distance between target training clips; the score is the smaller quotient.

Both use training clips only, so a test clip's score never depends on other test clips. The
tables read test labels (AUC), so this is a diagnosis for the decision the issue needs
(``papers/004_ioa_cas.md``, "Why the issue is marked blocked"), never a choice of the compendium.

    python probes/probe_domain_scaling.py [--profile default] [--data-root DIR --label NAME]

Writes ``probes/results/probe_domain_scaling_<label>.{json,md}`` atomically.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.preprocessing import normalize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from probe_anomaly_information import (  # noqa: E402
    data_label,
    diagnostic_arguments,
    newest_matching,
    write_outputs,
)

from asd_utils.config import load_config  # noqa: E402
from asd_utils.data import discover  # noqa: E402
from asd_utils.evaluation import metrics  # noqa: E402
from asd_utils.methods import pipeline  # noqa: E402
from asd_utils.scoring import KMeansScorer  # noqa: E402
from asd_utils.synth import ensure_dataset  # noqa: E402

RUN_GLOB = "06_*/training/three_subnet_*/embeddings_{part}_*.npz"


def _cosine_to_nearest(queries: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """(M,) cosine distance of each L2-normalised query to its nearest L2-normalised bank row."""
    return 1.0 - (queries @ bank.T).max(axis=1)


def domain_scaled_scores(train_emb: np.ndarray, train_domains: np.ndarray, test_emb: np.ndarray,
                         kmeans: dict, seed: int = 0) -> np.ndarray:
    """(M,) per-domain scaled K-Means scores of one section; embeddings L2-normalised, (N, D) / (M, D).

    Source distances are divided by the median distance of held-out source training clips to
    k-means centres fitted on the other half (2 folds); target distances by the median
    leave-one-out nearest-neighbour distance between target training clips.
    """
    source, target = train_emb[train_domains == "source"], train_emb[train_domains == "target"]
    if len(source) < 4 or len(target) < 2:
        raise ValueError(f"per-domain scales need >= 4 source and >= 2 target training clips; "
                         f"got {len(source)} and {len(target)}")
    halves = np.array_split(np.random.default_rng(seed).permutation(len(source)), 2)
    held_out = [KMeansScorer(**kmeans, random_state=seed).fit(source[fit]).score(source[held])
                for fit, held in ((halves[0], halves[1]), (halves[1], halves[0]))]
    source_scale = float(np.median(np.concatenate(held_out)))
    similarity = target @ target.T
    np.fill_diagonal(similarity, -np.inf)
    target_scale = float(np.median(1.0 - similarity.max(axis=1)))
    source_scale, target_scale = max(source_scale, 1e-12), max(target_scale, 1e-12)  # duplicated clips
    to_source = KMeansScorer(**kmeans, random_state=seed).fit(source).score(test_emb)
    to_target = _cosine_to_nearest(test_emb, target)
    return np.minimum(to_source / source_scale, to_target / target_scale)


def main(argv: list[str] | None = None) -> int:
    args = diagnostic_arguments(__doc__.split("\n\n")[0], argv)

    root = args.data_root.resolve() if args.data_root else ensure_dataset(args.profile)
    train, test = pipeline.split_index(discover(root))
    if test["is_anomaly"].isna().any():
        raise ValueError(f"{root}: some test clips carry no normal/anomaly label; the diagnosis needs labelled clips")
    cache = ROOT / "cache" / args.profile
    found = {part: newest_matching(cache, RUN_GLOB.format(part=part), "embeddings", n)
             for part, n in (("train", len(train)), ("test", len(test)))}
    for part, hit in found.items():
        if hit is None:
            raise FileNotFoundError(f"no cached three-subnetwork {part} embeddings under {cache} with one row per "
                                    f"{part} clip of {root}; run notebook 06 on this root first")
    if found["train"][0].parent != found["test"][0].parent:
        raise ValueError(f"the newest train and test embeddings come from different models: "
                         f"{found['train'][0].parent} and {found['test'][0].parent}")
    cfg = load_config("06_ioa", args.profile)
    kmeans = {k: cfg["scoring"]["kmeans"][k] for k in ("n_clusters", "metric", "n_init")}
    train_emb, test_emb = (normalize(found[part][1].astype(np.float64)) for part in ("train", "test"))

    plain = pipeline.score_sections(KMeansScorer(**kmeans, random_state=0), train, train_emb, test, test_emb,
                                    n_splits=2, seed=0).test
    scaled = np.full(len(test), np.nan)
    for (machine, section), rows in train.groupby(["machine", "section"]):
        clips = np.flatnonzero(((test["machine"] == machine) & (test["section"] == section)).to_numpy())
        scaled[clips] = domain_scaled_scores(train_emb[rows.index], rows["domain"].to_numpy(), test_emb[clips], kmeans)

    tables = {name: metrics.evaluate(test, scores)
              for name, scores in (("plain", plain), ("per-domain scaled", scaled))}
    rows = []
    for name, table in tables.items():
        for metric in ("auc_source", "auc_target"):
            rows.append({"scoring": name, "metric": metric, **dict(zip(table["machine"], table[metric])),
                         "official score": metrics.official_score(table)})
    out = pd.DataFrame(rows).set_index(["scoring", "metric"])
    print(out.round(3).to_string())
    payload = {"profile": args.profile, "root": args.label or args.profile, "kmeans": kmeans,
               "embeddings": {p: str(hit[0].relative_to(ROOT)) for p, hit in found.items()},
               "official_score": {n: round(metrics.official_score(t), 4) for n, t in tables.items()},
               "per_machine": {n: t.round(4).to_dict(orient="records") for n, t in tables.items()}}
    header = ("Notebook 06's Three-subnet K-Means, plain and with per-domain distance scales from training "
              "clips (a step no report names; AUC reads test labels: a diagnosis, never a choice). "
              f"{data_label(root)}. Not the reports' results.\n\n")
    write_outputs(args.out / f"probe_domain_scaling_{args.label or args.profile}", payload, header, out, ".3f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
