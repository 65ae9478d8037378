"""Diagnostic (issue 9): does training the three-subnetwork model add or remove anomaly information?

Trains notebook 06's three-subnetwork model with the profile's settings (``configs/06_ioa.yaml``)
on a root's training clips and, after each of the given epochs (0 = the untrained network),
embeds every clip and records:

- the training accuracy on the auxiliary classes (eval mode, whole-clip embeddings);
- the supervised linear-probe AUC per machine type on the *test* clips
  (``probe_anomaly_information.probe_auc``: it reads test labels, so it is a diagnosis only);
- the official score and the lowest per-machine AUC-t of Three-subnet K-Means on those embeddings.

``--stft-remove-temporal-mean`` trains the model as it was before this diagnosis (each clip's
mean over time subtracted from every STFT bin, Wilkinghoff's normalisation) for comparison.
Nothing in the compendium is chosen by these numbers.

    python probes/probe_three_subnet_training.py                       # default root, 0 1 3 8 20
    python probes/probe_three_subnet_training.py --stft-remove-temporal-mean --label default_cmn
    python probes/probe_three_subnet_training.py --data-root data/bench_unseen --label unseen

Writes ``probes/results/probe_three_subnet_training_<label>.{json,md}`` atomically. About
5 minutes on 2 cores for the default root.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from probe_anomaly_information import data_label, probe_auc, write_outputs  # noqa: E402

from asd_utils import config  # noqa: E402
from asd_utils.data import discover  # noqa: E402
from asd_utils.evaluation import metrics  # noqa: E402
from asd_utils.methods import ioa  # noqa: E402
from asd_utils.synth import ensure_dataset  # noqa: E402
from asd_utils.training import crops  # noqa: E402


def evaluate_checkpoint(model, loss, waves_train, labels, waves_test, train_index, test_index, cfg, *,
                        seed: int = 0) -> dict:
    """One row: training accuracy, probe AUC per machine type, K-Means official score and min AUC-t."""
    ts = cfg["three_subnet"]
    model.eval()
    loss.eval()
    emb_train = ioa.embed_clips(model, waves_train, hop_seconds=ts["embed_hop_seconds"],
                                batch_size=int(ts["embed_batch_size"]))
    emb_test = ioa.embed_clips(model, waves_test, hop_seconds=ts["embed_hop_seconds"],
                               batch_size=int(ts["embed_batch_size"]))
    row = {"training_accuracy": ioa.classification_accuracy(emb_train, labels, loss)}
    is_anomaly = test_index["is_anomaly"].to_numpy().astype(int)
    machines = test_index["machine"].to_numpy()
    probes = {m: probe_auc(emb_test[machines == m], is_anomaly[machines == m]) for m in sorted(set(machines))}
    row.update({f"probe {m}": v for m, v in probes.items()}, probe_mean=float(np.mean(list(probes.values()))))
    scorer = ioa.make_scorer("kmeans", cfg["scoring"]["kmeans"], seed=seed)
    scores = ioa.score_sections(scorer, train_index, emb_train, test_index, emb_test,
                                n_splits=cfg["scoring"]["n_splits"], seed=seed,
                                l2_normalise=cfg["scoring"]["l2_normalise"])
    table = metrics.evaluate(test_index, scores.test)
    row.update(kmeans_official=metrics.official_score(table), kmeans_min_auc_target=float(table["auc_target"].min()))
    model.train()
    loss.train()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--label", default=None, help="name in the output files (default: the profile)")
    parser.add_argument("--epochs", type=int, nargs="+", default=[0, 1, 3, 8, 20],
                        help="completed epochs after which to measure (0: untrained)")
    parser.add_argument("--stft-remove-temporal-mean", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)

    cfg = config.load_config("06_ioa", args.profile)
    ts = {**cfg["three_subnet"], "sample_rate": cfg["sample_rate"],
          "stft_remove_temporal_mean": bool(args.stft_remove_temporal_mean)}
    if max(args.epochs) > int(ts["epochs"]):
        raise SystemExit(f"--epochs goes up to {ts['epochs']} (the profile's training length)")
    root = args.data_root.resolve() if args.data_root else ensure_dataset(args.profile)
    train_index, test_index = ioa.split_index(discover(root))
    if test_index["is_anomaly"].isna().any():
        raise SystemExit(f"{root}: test clips without normal/anomaly labels; the probe needs labelled test clips")
    labels, classes = ioa.class_labels(train_index, cfg["class_keys"])
    load_seconds = ts["load_seconds"] or max(crops.longest_clip_seconds(train_index["path"]), ts["clip_seconds"])
    waves_train = ioa.load_waves(train_index, clip_seconds=load_seconds, sample_rate=cfg["sample_rate"])
    waves_test = ioa.load_waves(test_index, clip_seconds=load_seconds, sample_rate=cfg["sample_rate"])
    model, loss, trainer, loader = ioa.build_three_subnet_training(
        waves_train, labels, len(classes), ts, seed=args.seed, progress=False)

    rows = []
    for epoch in sorted(set(args.epochs)):
        started = time.perf_counter()
        if epoch:
            trainer.fit(loader, until_epoch=epoch)
        rows.append({"epoch": epoch, **evaluate_checkpoint(model, loss, waves_train, labels, waves_test,
                                                           train_index, test_index, cfg, seed=args.seed)})
        print(f"epoch {epoch}: probe {rows[-1]['probe_mean']:.3f}, K-Means {rows[-1]['kmeans_official']:.3f}, "
              f"training accuracy {rows[-1]['training_accuracy']:.2f} ({time.perf_counter() - started:.0f} s)",
              flush=True)

    table = pd.DataFrame(rows).set_index("epoch")
    label = args.label or args.profile
    settings = {"profile": args.profile, "root": label, "seed": args.seed, "torch_threads": torch.get_num_threads(),
                "stft_remove_temporal_mean": bool(args.stft_remove_temporal_mean)}
    header = (f"Three-subnetwork model during training ({data_label(root)}; profile {args.profile}, seed "
              f"{args.seed}, {settings['torch_threads']} torch threads, STFT temporal-mean removal "
              f"{'on' if args.stft_remove_temporal_mean else 'off'}). Probe AUC: supervised, cross-validated "
              "on test clips, a diagnosis, never a choice. Not the reports' results.\n\n")
    write_outputs(args.out / f"probe_three_subnet_training_{label}",
                  {**settings, "rows": table.round(4).reset_index().to_dict(orient="records")}, header, table, ".3f")
    return 0


if __name__ == "__main__":
    sys.exit(main())
