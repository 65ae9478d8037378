"""First-shot rule, per clip: no system's score of a test clip depends on the other test clips.

Part 1 tests the shared helper :func:`clip_independence.assert_clip_independent` itself (it must
catch test-set normalisation, batch statistics, ranking and non-determinism). Part 2 runs every
system of notebooks 01, 02 and 06 through it, part 3 every system of 03, 04, 05 and 08 on a root
whose test clips have mixed lengths (clips at their own lengths, DCASE 2025 supplemental data),
each on a tiny DCASE-layout dataset written here and the notebooks' own ``smoke`` configs: each
``score_fn`` goes from the test clips' WAV files (a subset, or with duplicates) through the
notebook's front end and scorer to the scores, with models trained once on the training clips only.
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


def _write_root(root, rng, *, test_seconds=(CLIP_SECONDS,), supplemental=None):
    """Two machine types (fan, valve), one section: per type 10 source + 2 target training clips of
    1 s (two attribute values), 9 test clips (source/target, normal/anomalous) whose lengths cycle
    through ``test_seconds``, and supplemental clips of the kinds ``supplemental[machine]``."""
    for machine, base in (("fan", 220.0), ("valve", 500.0)):
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
            wave = _clip(rng, base * (1.3 if domain == "target" else 1.0), label == "anomaly")
            n = int(SR * test_seconds[i % len(test_seconds)])
            wave = np.tile(wave, -(-n // len(wave)))[:n]
            sf.write(folder / "test" / f"section_00_{domain}_test_{label}_{100 + i:04d}_spd_1.wav", wave, SR)
        for i, kind in enumerate(supplemental[machine]):
            wave = _clip(rng, base, False) if kind == "clean" else (0.05 * rng.normal(size=SR)).astype(np.float32)
            sf.write(folder / "supplemental" / f"section_00_source_supplemental_{kind}_{200 + i:04d}_spd_1.wav",
                     wave, SR)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> pd.DataFrame:
    """Two machine types, one section; per type 10 source + 2 target training clips (two
    attribute values), 2 clean + 2 noise supplemental clips and 9 test clips (source/target,
    normal/anomalous), 1 s each at 16 kHz. Returns the ``asd_utils.data.discover`` index."""
    from asd_utils.data import discover

    root = tmp_path_factory.mktemp("tiny_dcase")
    kinds = ("clean", "clean", "noise", "noise")
    _write_root(root, np.random.default_rng(0), supplemental={"fan": kinds, "valve": kinds})
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
    from asd_utils.config import load_config
    from asd_utils.methods.baseline_ae import SYSTEMS, AEConfig, run_autoencoder_baseline

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
    from asd_utils.scoring import GenRepKNN

    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(size=(30, 5)), rng.normal(size=(3, 5)) + 2.0])
    knn = GenRepKNN(k=2, n_mix_support=3, mix_alpha=0.9).fit(emb, ["source"] * 30 + ["target"] * 3)
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


# ------------------------------------------------------------------------------------------------
# part 3: every system of notebooks 03, 04, 05 and 08, on a root whose test clips have mixed lengths
# ------------------------------------------------------------------------------------------------
MIXED_TEST_SECONDS = (0.75, 1.0, 1.5)  # test clips cycle through these; training clips last 1 s


@pytest.fixture(scope="module")
def mixed_dataset(tmp_path_factory) -> pd.DataFrame:
    """The part-2 dataset's layout, with test clips of 0.75, 1 and 1.5 s (as DCASE roots mix lengths)
    and DCASE 2025's supplemental data: fan ships clean clips only, valve noise-only clips."""
    from asd_utils.data import discover

    root = tmp_path_factory.mktemp("tiny_dcase_mixed")
    _write_root(root, np.random.default_rng(1), test_seconds=MIXED_TEST_SECONDS,
                supplemental={"fan": ("clean",) * 3, "valve": ("noise",) * 3})
    return discover(root)


def _load_rows(rows):
    from asd_utils.training import clips

    return clips.load_clips(rows["path"])


def test_mixed_dataset_really_mixes_lengths(mixed_dataset):
    from asd_utils.training import clips

    test = _split(mixed_dataset, "test")
    assert sorted(set(clips.clip_lengths(_load_rows(test)) / SR)) == list(MIXED_TEST_SECONDS)


@pytest.mark.slow
def test_notebook_03_myps_systems(mixed_dataset, tmp_path):
    """EAT-LoRA / EAT-FFT checkpoint ensembles (one library and sep-lib), MA and the -MA systems,
    as the notebook calls them: clips at their own lengths, windows from the training clips."""
    from asd_utils.config import load_config
    from asd_utils.methods import myps
    from asd_utils.methods.pipeline import class_labels, split_index
    from asd_utils.scoring import KNNScorer, SeparateLibraryKNN
    from asd_utils.training import clips

    cfg = load_config("03_myps", "smoke")
    train_index, _ = split_index(mixed_dataset)
    test_index = _split(mixed_dataset, "test")
    fit_index = myps.training_set(mixed_dataset, clean_class=cfg["data"]["clean_class"])
    fit_labels, classes = class_labels(fit_index, cfg["class_keys"])
    noise_index = myps.noise_clips(mixed_dataset)
    pools = sorted(noise_index["machine"].unique())
    noise_pools = [clips.stack_tiled(_load_rows(noise_index[noise_index["machine"] == m])) for m in pools]
    class_group = np.array([pools.index(c.split("|")[0]) if c.split("|")[0] in pools else -1 for c in classes])
    train_waves = _load_rows(train_index)
    fit_waves = clips.concat(train_waves, _load_rows(fit_index[fit_index["split"] != "train"]))
    eat_cfg = {**cfg["eat"], "crop_seconds": 0.5}
    window = clips.window_samples(fit_waves, eat_cfg["crop_seconds"])
    variants = {name: {**v, "steps": 2} for name, v in cfg["variants"].items()}
    plans = myps.run_plans(variants, len(fit_index))
    ma_cfg = {**cfg["mechanism"], "n_splits": 2,
              "extractor": {**cfg["mechanism"]["extractor"], "stft_n_fft": 256, "stft_hop": 256, "n_segments": 4}}
    ind_train = None

    def pipeline(rows):
        nonlocal ind_train
        rows = rows.reset_index(drop=True)
        test_waves = _load_rows(rows)
        snapshots, _ = myps.train_and_embed(
            plans, eat_cfg=eat_cfg, arcface_cfg=cfg["arcface"], checkpoint=None, fit_waves=fit_waves,
            fit_labels=fit_labels, classes=classes, class_group=class_group, noise_pools=noise_pools,
            noise_cfg=cfg["data"]["noise_mixing"], embed_sets={"train": (train_waves, train_index["path"].tolist()),
                                                               "test": (test_waves, rows["path"].tolist())},
            crop_samples=window, hop_samples=window // 2, cache_root=tmp_path / "runs", seed=0, progress=False)
        systems = {}
        for suffix, scorer in (("", KNNScorer(k=1, metric="cosine", separate_domains=False)),
                               (" sep-lib", SeparateLibraryKNN(k=1, metric="cosine"))):
            per_snapshot = myps.snapshot_scores(snapshots, scorer, train_index, rows)
            for variant in variants:
                members = {n: s for n, s in per_snapshot.items() if snapshots[n].plan.variant == variant}
                systems[variant + suffix] = myps.checkpoint_ensemble(members, train_index, rows, None).scores
        ind_train, ind_test, _, estimated = myps.mechanism_indicator_sets(train_waves, test_waves, train_index, rows,
                                                                          ma_cfg, sample_rate=SR,
                                                                          cache_dir=tmp_path / "ma")
        assert estimated == ["fan", "valve"]  # no geometry configured: both estimated from training clips
        systems["MA"], _, _ = myps.mechanism_scores(ind_train, ind_test, train_index, rows, ma_cfg["scorer"],
                                                    n_splits=2, seed=0)
        for variant in variants:
            systems[f"{variant}-MA"] = myps.replace_machines(systems[variant], systems["MA"], train_index, rows,
                                                             ["valve"])
        return {name: s.test for name, s in systems.items()}

    run = _memo(pipeline)
    names = [v + s for v in variants for s in ("", " sep-lib")] + ["MA"] + [f"{v}-MA" for v in variants]
    _check_systems(run, test_index, names, atol=1e-5)


def test_notebook_04_nivic_systems(mixed_dataset, tmp_path):
    """Every NIVIC system (pseudo-labels, high-pass, simulated clips from clean fan + valve noise,
    SE-ResNet18 + |FFT|, kNN): the test clips' scores do not depend on the other test clips."""
    from asd_utils.config import load_config
    from asd_utils.methods import finetune, nivic
    from asd_utils.methods.pipeline import split_index
    from asd_utils.training import build_class_labels, clips

    cfg = load_config("04_nivic", "smoke")
    model_cfg = {**cfg["model"], "sample_rate": SR, "crop_seconds": 0.5, "embed_hop_seconds": 0.25, "epochs": 1}
    train_index, _ = split_index(mixed_dataset)
    test_index = _split(mixed_dataset, "test")
    sup = mixed_dataset[mixed_dataset["split"] == "supplemental"].reset_index(drop=True)
    kinds = sup["supplemental_kind"]
    clip_samples = int(round(float(cfg["clip_seconds"]) * SR))
    load = lambda r: [clips.fit_window(c, clip_samples) for c in _load_rows(r)]  # noqa: E731
    waves_train = load(train_index)
    pseudo, _ = nivic.pseudo_label_all(train_index, waves_train, cfg["pseudo_labels"], sample_rate=SR, seed=0)
    sim_waves, sim_rows = nivic.simulate_supplemental(sup, load(sup[kinds == "clean"]), load(sup[kinds == "noise"]),
                                                      cfg["supplemental"], seed=0)
    assert len(sim_rows) == 3 * int(cfg["supplemental"]["mixes_per_clean"])  # clean fan x valve noise
    models = {}
    for name in nivic.SYSTEMS:
        opt = nivic.system_options(name)
        rows_c = nivic.class_table(train_index, pseudo, use_pseudo=opt["pseudo_labels"],
                                   simulated=sim_rows if opt["supplemental"] else None)
        waves = clips.concat(waves_train, sim_waves) if opt["supplemental"] else waves_train
        labels, classes = build_class_labels(rows_c, ["machine", "section", nivic.CLASS_COLUMN, "domain"])
        fit_idx, _ = finetune.holdout_split(labels, 0.0, seed=0)
        result = nivic.train_model(clips.take(waves, fit_idx), labels[fit_idx], classes, model_cfg, ssl=opt["ssl"],
                                   seed=0, progress=False)
        bank = nivic.embed(result.model, nivic.apply_highpass(waves_train, train_index["machine"], ["valve"],
                                                              cutoff_hz=1000.0) if opt["highpass"] else waves_train,
                           model_cfg)
        models[name] = (result.model, bank, opt)

    def pipeline(rows):
        rows = rows.reset_index(drop=True)
        waves = load(rows)
        out = {}
        for name, (model, bank, opt) in models.items():
            test_waves = nivic.apply_highpass(waves, rows["machine"], ["valve"], cutoff_hz=1000.0) \
                if opt["highpass"] else waves
            out[name] = nivic.score(train_index, bank, rows, nivic.embed(model, test_waves, model_cfg),
                                    cfg["scoring"], seed=0).test
        return out

    _check_systems(_memo(pipeline), test_index, list(nivic.SYSTEMS), atol=1e-5)


def test_notebook_05_xju_systems(mixed_dataset, tmp_path):
    """BEATs-FFT, EAT-FFT, EAT-BEATs, EAT-BEATs-FFT (untrained tiny stand-ins, OS-SCL for a few
    steps) with and without SMOTE: whole clips at their own lengths, window means."""
    from asd_utils.config import load_config
    from asd_utils.methods import xju
    from asd_utils.methods.pipeline import score_sections, split_index
    from asd_utils.training import clips

    cfg = load_config("05_xju", "smoke")
    model_cfg = {**cfg["model"], "crop_seconds": 0.5, "embed_hop_seconds": 0.25}
    train_cfg = {**cfg["training"], "total_steps": 2}
    train_index, _ = split_index(mixed_dataset)
    test_index = _split(mixed_dataset, "test")
    labels, classes = xju.class_labels(train_index, cfg["class_keys"])
    waves_train = _load_rows(train_index)
    window = clips.window_samples(waves_train, model_cfg["crop_seconds"])
    hop = int(round(model_cfg["embed_hop_seconds"] * SR))
    trained = {}
    for system in cfg["systems"]:
        backbones = xju.load_backbones(system, model_cfg, {}, crop_samples=window, seed=0)
        model = xju.build_system(system, model_cfg, backbones, crop_samples=window, checkpoints={}, seed=0)
        result = xju.train_system(model, waves_train, labels, len(classes), train_cfg, crop_samples=window, seed=0,
                                  progress=False)
        trained[system] = (result.model, xju.embed_system(result.model, waves_train, crop_samples=window,
                                                          hop_samples=hop, batch_size=8))

    def pipeline(rows):
        rows = rows.reset_index(drop=True)
        waves = _load_rows(rows)
        out = {}
        for system, (model, train_emb) in trained.items():
            test_emb = xju.embed_system(model, waves, crop_samples=window, hop_samples=hop, batch_size=8)
            for smote, name in ((True, system), (False, f"{system} no-SMOTE")):
                out[name] = score_sections(xju.make_scorer(cfg["scoring"], smote=smote, seed=0), train_index,
                                           train_emb, rows, test_emb, n_splits=2, seed=0).test
        return out

    names = [n for s in cfg["systems"] for n in (s, f"{s} no-SMOTE")]
    _check_systems(_memo(pipeline), test_index, names, atol=1e-5)


@pytest.mark.slow
def test_notebook_08_frozen_knn_systems(mixed_dataset):
    """08's frozen-embedding kNN (GenRep and plain kNN detectors of its config) on an untrained
    tiny BEATs: a test clip's score does not depend on the other test clips."""
    from asd_utils.backbones import load_backbone
    from asd_utils.config import load_config
    from asd_utils.pretrain.evaluate import frozen_knn_scores

    ev = load_config("07_pretraining", "smoke")["evaluation"]
    train_rows = _split(mixed_dataset, "train")
    test_index = _split(mixed_dataset, "test")
    backbones = {name: load_backbone(name, None, size="tiny", seed=0) for name in ("beats", "eat")}
    systems = [s for s in ev["systems"] if s["backbone"] in backbones]
    assert systems

    def pipeline(rows):
        index = pd.concat([train_rows, rows], ignore_index=True)
        out = {}
        for system in systems:
            result = frozen_knn_scores(backbones[system["backbone"]], index, layer=system["layer"],
                                       pooling=system["pooling"], detector=system["detector"],
                                       clip_samples=int(SR * 0.5), batch_size=4, progress=False,
                                       with_metrics=False)
            out[system["name"]] = result.test_scores
        return out

    _check_systems(_memo(pipeline), test_index, [s["name"] for s in systems], atol=1e-5)
