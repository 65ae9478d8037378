"""Pretrain one stand-in and write it in its published checkpoint format.

:func:`pretrain_standin` loads the corpus, computes the model's own front end, trains, and writes
into ``folder`` (which the caller renames into place, :mod:`asd_utils.pretrain.standins`):

- ``beats``: ``BEATs_standin.pt`` = ``{"cfg": BEATsConfig fields + "compendium_standin": marker,
  "model": state dict}`` (the official BEATs format);
- ``eat``: a Hugging Face folder (``model.safetensors`` with ``model.`` keys + ``config.json``
  carrying ``"compendium_standin"``), as ``worstchan/EAT-*``;
- ``wav2vec2``: a ``save_pretrained`` folder of ``Wav2Vec2ForPreTraining`` (encoder + quantiser,
  ``config.json`` carrying ``"compendium_standin"``) with ``preprocessor_config.json``;

plus ``history.json`` (loss curves, accuracies, timings) and ``standin.json`` (the marker). Before
returning it reloads the checkpoint through ``load_backbone(name, checkpoint=..., size=...)``
(strict keys) and checks that the hidden states equal the trained model's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import transformers
from transformers import Wav2Vec2FeatureExtractor

from asd_utils.backbones import load_backbone
from asd_utils.backbones.eat import save_eat_hf
from asd_utils.backbones.hf_speech import HFSpeechBackbone
from asd_utils.backbones.provenance import MARKER_KEY
from asd_utils.pretrain.beats import BEATsPretrainConfig, beats_features, pretrain_beats
from asd_utils.pretrain.corpus import Corpus, load_corpus_waves
from asd_utils.pretrain.eat import EATPretrainConfig, eat_features, pretrain_eat
from asd_utils.pretrain.registry import CHECKPOINT_FILES, PRETRAIN_CODE_VERSION, PRETRAINABLE, read_history
from asd_utils.pretrain.speech import Wav2Vec2PretrainConfig, pretrain_wav2vec2
from asd_utils.storage.atomic import atomic_write_json

__all__ = ["CHECKPOINT_FILES", "PRETRAINABLE", "PRETRAIN_CODE_VERSION", "pretrain_standin", "read_history",
           "save_standin"]


_WAVES: dict[tuple, np.ndarray] = {}  # one process, several stand-ins: read the corpus once


def _clip_seconds(corpus: Corpus) -> float:

    info = sf.info(corpus.paths[0])
    return info.frames / info.samplerate


def corpus_waves(corpus: Corpus, seconds: float | None, *, progress: bool = True) -> np.ndarray:
    """(N, samples) float32 waves of the corpus at 16 kHz (``seconds``: None = the clips' own length)."""
    seconds = float(seconds) if seconds else _clip_seconds(corpus)
    key = (corpus.fingerprint, seconds)
    if key not in _WAVES:
        _WAVES.clear()
        _WAVES[key] = load_corpus_waves(corpus, seconds, progress=progress)
    return _WAVES[key]


def _check_reload(name: str, trained, checkpoint: Path, size: str, **kwargs) -> None:
    """Reload through ``load_backbone`` (strict) and compare hidden states on a fixed noise batch."""


    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # its load report lists the (allowed) pretraining-head keys
    try:
        reloaded = load_backbone(name, checkpoint=checkpoint, size=size, **kwargs)
    finally:
        transformers.logging.set_verbosity(verbosity)
    probe = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.inference_mode():
        a = trained.hidden_states(probe)
        b = reloaded.hidden_states(probe)
    if len(a) != len(b) or any(not torch.equal(x, y) for x, y in zip(a, b)):
        raise RuntimeError(f"{name} stand-in {checkpoint}: reloaded hidden states differ from the trained model's")


def save_standin(name: str, model, folder: str | Path, *, marker: dict, size: str = "tiny",
                 check_with: dict | None = None) -> Path:
    """Write a trained stand-in in the published format of ``name`` with the provenance
    ``marker`` (see the module docstring) and check that it reloads through ``load_backbone``
    (strict) with identical hidden states. ``model``: the trained ``BEATs`` / ``EAT`` encoder, or
    the ``Wav2Vec2ForPreTraining`` model. ``check_with``: extra ``load_backbone`` arguments
    (EAT: ``target_length``). Returns the checkpoint path (BEATs: file; others: ``folder``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    check_with = dict(check_with or {})
    if name == "beats":
        path = folder / CHECKPOINT_FILES["beats"]
        # the official layout (save_beats_checkpoint's), with the marker inside cfg
        torch.save({"cfg": {**model.cfg.to_dict(), MARKER_KEY: marker}, "model": model.official_state_dict()}, path)
        _check_reload("beats", model, path, size)
    elif name == "eat":

        path = folder
        save_eat_hf(model, path, max_length=64)  # fixed sin-cos positions for up to 1024 frames
        config_file = path / "config.json"
        hf_config = json.loads(config_file.read_text())
        hf_config[MARKER_KEY] = marker
        config_file.write_text(json.dumps(hf_config, indent=2))
        _check_reload("eat", model, path, size, **check_with)
    elif name == "wav2vec2":


        path = folder
        setattr(model.config, MARKER_KEY, marker)
        model.save_pretrained(str(path))
        Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                 return_attention_mask=False).save_pretrained(str(path))
        encoder = model.wav2vec2
        encoder.config.apply_spec_augment = False
        _check_reload("wav2vec2", HFSpeechBackbone("wav2vec2", encoder, size, True).eval(), path, size)
    else:
        raise ValueError(f"no stand-in format for {name!r}; pretrainable: {', '.join(PRETRAINABLE)}")
    return path


def pretrain_standin(name: str, cfg: dict, corpus: Corpus, folder: str | Path, *, marker: dict, seed: int = 0,
                     progress: bool = True) -> Path:
    """Pretrain stand-in ``name`` (one of :data:`PRETRAINABLE`) with ``cfg`` (its section of
    ``standins.yaml``) on ``corpus`` and write it into ``folder`` (:func:`save_standin`, plus
    ``history.json`` and ``standin.json``). Returns the checkpoint path."""
    if name not in PRETRAINABLE:
        raise ValueError(f"no pretraining objective for {name!r}; pretrainable: {', '.join(PRETRAINABLE)}")
    folder = Path(folder)
    cfg = dict(cfg)
    seconds = cfg.pop("clip_seconds", None)
    waves = corpus_waves(corpus, seconds, progress=progress)
    check_with: dict = {}
    if name == "beats":

        pcfg = BEATsPretrainConfig.from_dict(cfg)
        initial = load_backbone("beats", size=pcfg.size, seed=seed)
        features = beats_features(initial, waves)
        with torch.random.fork_rng(devices=[]):  # dropout draws from the global RNG: seed it
            torch.manual_seed(seed)
            model, history = pretrain_beats(features, pcfg, seed=seed, progress=progress, initial=initial)
    elif name == "eat":

        pcfg = EATPretrainConfig.from_dict(cfg)
        initial = load_backbone("eat", size=pcfg.size, seed=seed, target_length=pcfg.crop_frames)
        features = eat_features(initial, waves)
        with torch.random.fork_rng(devices=[]):  # the decoder's mask noise draws from the global RNG
            torch.manual_seed(seed)
            model, history = pretrain_eat(features, pcfg, seed=seed, progress=progress, initial=initial)
        check_with["target_length"] = pcfg.crop_frames
    else:

        pcfg = Wav2Vec2PretrainConfig.from_dict(cfg)
        with torch.random.fork_rng(devices=[]):  # Gumbel noise draws from the global RNG
            torch.manual_seed(seed)
            model, history = pretrain_wav2vec2(waves, pcfg, seed=seed, progress=progress)
    path = save_standin(name, model, folder, marker=marker, size=pcfg.size, check_with=check_with)
    atomic_write_json(folder / "history.json", {"name": name, "config": pcfg.to_dict(), **history.to_dict()})
    atomic_write_json(folder / "standin.json", marker)
    return path
