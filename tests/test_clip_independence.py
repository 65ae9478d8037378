"""First-shot rule, per clip: no system's score of a test clip depends on the other test clips.

Part 1 tests the shared helper :func:`clip_independence.assert_clip_independent` itself (it must
catch test-set normalisation, batch statistics, ranking and non-determinism). Part 2 runs every
system of notebooks 01, 02 and 06 through it, on a tiny DCASE-layout dataset written here and the
notebooks' own ``smoke`` configs: each ``score_fn`` goes from the test clips' WAV files (a subset, or
with duplicates) through the notebook's front end and scorer to the scores, with models trained
once on the training clips only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from clip_independence import assert_clip_independent, take

SR = 16000
CLIP_SECONDS = 1.0


# ------------------------------------------------------------------------------------------------
# part 1: the helper
# ------------------------------------------------------------------------------------------------
def _x(n=9, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3))


def test_helper_accepts_a_per_clip_score_in_every_container():
    centre = np.array([0.5, -1.0, 2.0])

    def score(items):
        return np.linalg.norm(np.asarray(items, dtype=float).reshape(len(items), 3) - centre, axis=1)

    x = _x()
    assert_clip_independent(score, x)
    assert_clip_independent(score, list(x))
    assert_clip_independent(score, tuple(map(tuple, x)))
    assert_clip_independent(lambda t: score(t.numpy()), torch.as_tensor(x))
    frame = pd.DataFrame(x, columns=["a", "b", "c"], index=[f"clip{i}" for i in range(len(x))])
    assert_clip_independent(lambda rows: score(rows[["a", "b", "c"]].to_numpy()), frame, n_drop=5)


def test_take_keeps_order_repeats_and_the_container():
    frame = pd.DataFrame({"v": [10, 11, 12]}, index=["a", "b", "c"])
    assert take(frame, [2, 0, 2])["v"].tolist() == [12, 10, 12]
    assert take(frame, [2, 0, 2]).index.tolist() == ["c", "a", "c"]
    assert take([1, 2, 3], [1, 1]) == [2, 2] and take((1, 2, 3), [0]) == (1,)
    np.testing.assert_array_equal(take(np.arange(5) * 2, [4, 0]), [8, 0])
    assert torch.equal(take(torch.arange(3), [2]), torch.tensor([2]))


@pytest.mark.parametrize("name,score_fn", [
    # z-scored with the test set's own mean and std (GenRep's public code does this)
    ("test-set normalisation", lambda x: (x[:, 0] - x[:, 0].mean()) / x[:, 0].std()),
    # rank among the test clips
    ("rank", lambda x: np.argsort(np.argsort(x[:, 0])).astype(float)),
    # distance to the nearest *other* test clip (a memory bank that includes the test set)
    ("test clips in the memory bank", lambda x: np.sort(np.linalg.norm(x[:, None] - x[None], axis=2), axis=1)[:, 1]),
    # depends on the batch only through its maximum: caught by scoring a clip alone
    ("batch maximum", lambda x: x[:, 0] / np.abs(x[:, 0]).max()),
])
def test_helper_catches_scores_that_depend_on_other_clips(name, score_fn):
    with pytest.raises(AssertionError, match="must not depend on the other test clips"):
        assert_clip_independent(score_fn, _x(12))


def test_helper_catches_batch_norm_in_training_mode():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))

    def score(x):
        with torch.no_grad():
            return net(torch.as_tensor(x, dtype=torch.float32))[:, 0].double().numpy()

    x = _x(10)
    with pytest.raises(AssertionError, match="removed"):
        assert_clip_independent(score, x)
    net.eval()  # running statistics: per clip
    assert_clip_independent(score, x, atol=1e-6)


def test_helper_catches_non_determinism_wrong_lengths_and_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(AssertionError, match="not deterministic"):
        assert_clip_independent(lambda x: x[:, 0] + rng.normal(size=len(x)), _x())
    with pytest.raises(AssertionError, match="shape"):
        assert_clip_independent(lambda x: x[:-1, 0], _x())
    with pytest.raises(ValueError, match="at least"):
        assert_clip_independent(lambda x: x[:, 0], _x(4), n_drop=3)
    with pytest.raises(ValueError, match="n_drop"):
        assert_clip_independent(lambda x: x[:, 0], _x(), n_drop=0)
    # atol is honoured: a 1e-7 wobble with the set size passes at 1e-6 and fails at 1e-9
    wobble = lambda x: x[:, 0] + 1e-7 * (len(x) % 2)  # noqa: E731
    assert_clip_independent(wobble, _x(9), atol=1e-6)
    with pytest.raises(AssertionError):
        assert_clip_independent(wobble, _x(9))
    # NaN scores must stay NaN (a blinded clip without a section model, say), nothing else
    assert_clip_independent(lambda x: np.where(x[:, 0] > 0, np.nan, x[:, 1]), _x())


# ------------------------------------------------------------------------------------------------
# part 2: every system of notebooks 01, 02 and 06
# ------------------------------------------------------------------------------------------------
def _clip(rng, freq, anomalous):
    t = np.arange(int(SR * CLIP_SECONDS)) / SR
    wave = 0.3 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) + 0.05 * rng.normal(size=t.size)
    if anomalous:
        wave += 0.2 * np.sin(2 * np.pi * 3.7 * freq * t) * (rng.uniform(size=t.size) < 0.3)
    return wave.astype(np.float32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> pd.DataFrame:
    """Two machine types, one section; per type 10 source + 2 target training clips (two
    attribute values), 2 clean + 2 noise supplemental clips and 9 test clips (source/target,
    normal/anomalous), 1 s each at 16 kHz. Returns the ``asd_utils.data.discover`` index."""
    from asd_utils.data import discover

    root = tmp_path_factory.mktemp("tiny_dcase")
    rng = np.random.default_rng(0)
    for m, (machine, base) in enumerate((("fan", 220.0), ("valve", 500.0))):
        folder = root / "dev_data" / "raw" / machine
        for split in ("train", "test", "supplemental"):
            (folder / split).mkdir(parents=True)
        for i in range(12):
            domain = "source" if i < 10 else "target"
            attr = f"spd_{1 + i % 2}"
            freq = base * (1.0 + 0.1 * (i % 2)) * (1.3 if domain == "target" else 1.0)
            sf.write(folder / "train" / f"section_00_{domain}_train_normal_{i:04d}_{attr}.wav",
                     _clip(rng, freq, False), SR)
        for i in range(9):
            domain = "source" if i % 2 == 0 else "target"
            label = "anomaly" if i % 3 == 2 else "normal"
            freq = base * (1.3 if domain == "target" else 1.0)
            sf.write(folder / "test" / f"section_00_{domain}_test_{label}_{100 + i:04d}_spd_1.wav",
                     _clip(rng, freq, label == "anomaly"), SR)
        for i, kind in enumerate(("clean", "clean", "noise", "noise")):
            wave = _clip(rng, base, False) if kind == "clean" else (0.05 * rng.normal(size=SR)).astype(np.float32)
            sf.write(folder / "supplemental" / f"section_00_source_supplemental_{kind}_{200 + i:04d}_spd_1.wav",
                     wave, SR)
        assert m < 2
    index = discover(root)
    assert (index["split"] == "test").sum() == 18 and (index["split"] == "train").sum() == 24
    return index


def _split(index, split):
    return index[index["split"] == split].reset_index(drop=True)


def _memo(pipeline):
    """Run ``pipeline(test_rows) -> {system: scores}`` once per distinct list of test clips."""
    cache = {}

    def run(rows):
        key = tuple(rows["path"])
        if key not in cache:
            cache[key] = pipeline(rows)
        return cache[key]

    return run


def _check_systems(run, test_rows, systems, **kwargs):
    for system in systems:
        assert_clip_independent(lambda rows, s=system: run(rows)[s], test_rows, **kwargs)


# -- notebook 01 ---------------------------------------------------------------------------------
def test_notebook_01_autoencoder_systems(dataset, tmp_path):
    """AE-MSE and AE-MAHALA via ``run_autoencoder_baseline`` (as the notebook calls it)."""
    from asd_utils.baseline_ae import SYSTEMS, AEConfig, run_autoencoder_baseline
    from asd_utils.config import load_config

    cfg = load_config("01_baseline", "smoke")
    config = AEConfig(**cfg["ae"])
    train = _split(dataset, "train")

    def pipeline(rows):
        # one AE per machine type, trained on that type's clips only (and cached): the training
        # clips of the machine types present among the rows give the same models and scores
        # (run_autoencoder_baseline cannot score a machine type without test clips)
        own = train[train["machine"].isin(set(rows["machine"]))]
        run = run_autoencoder_baseline(pd.concat([own, rows]), config, clip_seconds=CLIP_SECONDS, seed=0,
                                       cache_dir=tmp_path, progress=False)
        assert run["test_index"]["path"].tolist() == rows["path"].tolist()
        return run["scores"]

    run = _memo(pipeline)
    test = _split(dataset, "test")
    for system in SYSTEMS:
        # float64 scores; the Mahalanobis distances of this tiny set reach ~1e9 (two target clips
        # give a near-singular covariance), so the tolerance is relative: 1e-12 of the largest score
        scale = float(np.nanmax(np.abs(run(test)[system])))
        assert_clip_independent(lambda rows, s=system: run(rows)[s], test, atol=max(1e-9, 1e-12 * scale))


# -- notebook 02 ---------------------------------------------------------------------------------
def test_notebook_02_gisp_heu_systems(dataset, tmp_path):
    """Systems 1 and 2 (GenRep kNN with MemMixup x statistical weight; with and without the
    weight), System 3 (AnoPatch, fine-tuned once) and System 4 (their ensemble): front end on the
    test clips' files, then the notebook's scoring calls."""
    from asd_utils.backbones import configured_size_and_layer, load_backbone
    from asd_utils.config import load_config
    from asd_utils.methods import anopatch, gisp

    cfg = load_config("02_gisp_heu", "smoke")
    clip_samples = int(SR * CLIP_SECONDS)
    train, test = _split(dataset, "train"), _split(dataset, "test")
    fitted = dataset[dataset["split"].isin(["train", "supplemental"])].reset_index(drop=True)
    size, layer = configured_size_and_layer(cfg["genrep"], None)
    backbone = load_backbone(cfg["genrep"]["backbone"], size=size, seed=0)

    def frontend(rows):
        return gisp.extract_frontend(backbone, rows, layer=layer, clip_samples=clip_samples,
                                     audio_features=cfg["audio_features"], batch_size=4, progress=False)

    fit_emb, fit_audio = frontend(fitted)
    ap_cfg = {**cfg["anopatch"], "batch_size": 8}
    _, ap_model, _ = anopatch.train_and_embed(ap_cfg, train, train.iloc[:2], checkpoint=None,
                                              clip_samples=clip_samples, progress=False)
    ap_train = anopatch.embed_paths(ap_model, train["path"].tolist(), clip_samples=clip_samples, progress=False)

    def pipeline(rows):
        rows = rows.reset_index(drop=True)
        emb, audio = frontend(rows)
        clips = pd.concat([fitted, rows], ignore_index=True)
        emb, audio = np.concatenate([fit_emb, emb]), np.concatenate([fit_audio, audio])
        s1 = gisp.score_machines(clips, emb, audio, knn=cfg["genrep"]["knn"], weighting=cfg["weighting"],
                                 progress=False)
        s2 = gisp.score_machines(clips, emb, audio, knn=cfg["genrep"]["knn"], weighting=cfg["weighting"],
                                 supplemental_kinds=cfg["system2"]["supplemental_kinds"],
                                 memory_bank_kinds=cfg["system2"]["memory_bank_kinds"], name="System-2",
                                 progress=False)
        ap_rows = anopatch.embed_paths(ap_model, rows["path"].tolist(), clip_samples=clip_samples,
                                       batch_size=4, progress=False)
        ap_clips = pd.concat([train, rows], ignore_index=True)
        t_idx, t_s, r_idx, r_s = anopatch.score_machines(ap_clips, np.concatenate([ap_train, ap_rows]),
                                                         knn=ap_cfg["knn"], progress=False)
        s3 = gisp.SystemScores("System-3", t_idx, t_s, r_idx, r_s)
        by_name = {"System-1": s1["weighted"], "System-2": s2["weighted"], "System-3": s3}
        s4 = gisp.ensemble_by_machine([by_name[n] for n in cfg["ensemble"]["systems"]], cfg["ensemble"]["weights"])
        for scores in (s1["weighted"], s2["weighted"], s3, s4):
            assert scores.test_index["path"].tolist() == rows["path"].tolist()
        return {"System-1": s1["weighted"].test_scores, "System-1 w/o weighting": s1["unweighted"].test_scores,
                "System-1 weight": s1["weighted"].extras["test_weights"],
                "System-2": s2["weighted"].test_scores, "System-3": t_s, "System-4": s4.test_scores}

    run = _memo(pipeline)
    # float32 networks: batched matrix products may round differently with the batch size
    _check_systems(run, test, ["System-1", "System-1 w/o weighting", "System-1 weight", "System-2", "System-3",
                               "System-4"], atol=1e-5)


def test_notebook_02_memmixup_bank_is_built_from_training_clips_only():
    """MemMixup enlarges the target bank with mixes of *training* clips: the scores of test clips
    against it are per clip (the dataset-level test above covers it too; here exactly, in float64)."""
    from asd_utils.methods import gisp

    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(size=(30, 5)), rng.normal(size=(3, 5)) + 2.0])
    knn = gisp.GenRepKNN(k=2, n_mix_support=3, mix_alpha=0.9).fit(emb, ["source"] * 30 + ["target"] * 3)
    knn.set_train_embeddings(emb)
    assert knn.target_bank_.shape == (3 + 9, 5)
    assert_clip_independent(knn.score, rng.normal(size=(12, 5)) + 1.0)


# -- notebook 06 ---------------------------------------------------------------------------------
def test_notebook_06_ioa_systems(dataset):
    """Three-subnet GMM and K-Means, the five fine-tuned pretrained models' K-Means, Ensembles 1-4:
    waveforms of the test clips -> the trained models' embeddings -> ``ioa.score_sections`` ->
    ``ioa.combine`` with the config's ensemble definitions and the accuracy filter."""
    from asd_utils.backbones import configured_size_and_layer, load_backbone
    from asd_utils.config import load_config
    from asd_utils.methods import finetune, ioa

    cfg = load_config("06_ioa", "smoke")
    train_index, test_index = ioa.split_index(dataset)
    labels, classes = ioa.class_labels(train_index, cfg["class_keys"])
    ts_cfg = {**cfg["three_subnet"], "sample_rate": cfg["sample_rate"], "clip_seconds": CLIP_SECONDS}
    pt_cfg = {**cfg["pretrained"], "clip_seconds": 0.25}
    scoring = cfg["scoring"]
    waves_train = ioa.load_waves(train_index, clip_seconds=ts_cfg["clip_seconds"])
    three = ioa.train_three_subnet(waves_train, labels, len(classes), ts_cfg, seed=0, classes=classes,
                                   progress=False)
    n_pt = int(round(pt_cfg["clip_seconds"] * SR))
    fit_idx, held_idx = finetune.holdout_split(labels, pt_cfg["holdout_fraction"], seed=0)
    models = {"three_subnet": three.model}
    accuracies = {}
    for k, name in enumerate(pt_cfg["models"]):
        size, _ = configured_size_and_layer(pt_cfg, None)
        backbone = load_backbone(name, None, size=size, seed=k)
        result = finetune.finetune(backbone, waves_train[fit_idx, :n_pt], labels[fit_idx], len(classes), pt_cfg,
                                   seed=k, heldout_waves=waves_train[held_idx, :n_pt],
                                   heldout_labels=labels[held_idx], progress=False)
        system = finetune.DISPLAY_NAMES[name]
        models[system], accuracies[system] = result.model, result.heldout_accuracy
    pretrained = [finetune.DISPLAY_NAMES[m] for m in pt_cfg["models"]]
    train_emb = {name: ioa.embed(model, waves_train if name == "three_subnet" else waves_train[:, :n_pt],
                                 batch_size=8) for name, model in models.items()}
    ens_cfg = cfg["ensembles"]
    kept = ioa.accuracy_filter(accuracies, **ens_cfg["accuracy_filter"])
    weights = {}
    for ensemble, definition in ens_cfg["definitions"].items():
        definition = dict(definition)
        if isinstance(definition.get("pretrained"), list):
            definition["pretrained"] = [finetune.DISPLAY_NAMES.get(p, p) for p in definition["pretrained"]]
        weights[ensemble] = ioa.ensemble_weights(definition, three_subnet_split=ens_cfg["three_subnet_split"],
                                                 pretrained=pretrained, kept=kept)
    assert len(weights["Ensemble-2"]) == 7 and set(weights["Ensemble-3"]) >= {"HuBERT"}

    def pipeline(rows):
        rows = rows.reset_index(drop=True)
        waves = ioa.load_waves(rows, clip_seconds=ts_cfg["clip_seconds"])
        systems = {}
        for scorer_name, system in (("gmm", "Three-subnet GMM"), ("kmeans", "Three-subnet K-Means")):
            test_emb = ioa.embed(models["three_subnet"], waves, batch_size=4)
            systems[system] = ioa.score_sections(ioa.make_scorer(scorer_name, scoring[scorer_name], seed=0),
                                                 train_index, train_emb["three_subnet"], rows, test_emb,
                                                 n_splits=scoring["n_splits"], seed=0,
                                                 l2_normalise=scoring["l2_normalise"])
        for system in pretrained:
            test_emb = ioa.embed(models[system], waves[:, :n_pt], batch_size=4)
            scorer = ioa.make_scorer(pt_cfg["scorer"], scoring[pt_cfg["scorer"]], seed=0)
            systems[system] = ioa.score_sections(scorer, train_index, train_emb[system], rows, test_emb,
                                                 n_splits=scoring["n_splits"], seed=0,
                                                 l2_normalise=scoring["l2_normalise"])
        for ensemble, w in weights.items():
            systems[ensemble] = ioa.combine(w, systems, train_index, rows)
        return {name: scores.test for name, scores in systems.items()}

    run = _memo(pipeline)
    names = ["Three-subnet GMM", "Three-subnet K-Means", *pretrained, *weights]
    assert len(names) == 11
    _check_systems(run, test_index, names, atol=1e-5)
