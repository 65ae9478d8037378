"""Batched, cached extraction of pooled per-layer embeddings from a backbone.

``extract_layer_embeddings(backbone, clips, layers=[...], pooling="mean", ...)`` runs the backbone
once per batch of clips (``torch.inference_mode``, fp16 autocast on CUDA), pools each requested
hidden state into one vector per clip, and returns ``{layer: (N, D) float32 array}``.

The on-disk cache (one ``.npz`` per call signature, ``<name>-<size>_<key>.npz`` of
``asd_utils.storage.cache.cached_arrays``: written atomically, under a file lock) is keyed by
everything that changes the numbers:

- backbone name and size; the weights' identity: the checkpoint's sha256, or
  ``random-init-seed-<seed>`` for untrained stand-ins, plus always a hash of the current state
  dict (so two different random initialisations, or a LoRA-adapted model, never share an entry);
- the requested layers, the pooling's name, the backbone's preprocessing options, ``clip_samples``,
  the length-fixing mode and the sample rate;
- the clips: for paths, the sha256 of the files' contents in order (``asd_utils.storage.keys.files_digest``: a
  moved or copied data root reuses the entry, an edited clip does not); for in-memory waveforms, the
  sha256 of their bytes;
- the source of this module and of the backbone's module, with every package module they import
  (``asd_utils.storage.keys.cache_key``).

A rerun with the same key loads the ``.npz`` and does not call the backbone at all.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from asd_utils.backbones.pooling import cls_pool, genrep_pool, max_pool, mean_pool
from asd_utils.data import fix_length, load_audio, load_batch
from asd_utils.device import autocast_context, resolve_device
from asd_utils.storage.cache import cached_arrays
from asd_utils.storage.keys import files_digest
from asd_utils.training import distributed as dist_utils

__all__ = [
    "extract_layer_embeddings",
    "resolve_pooling",
    "backbone_identity",
    "state_dict_hash",
    "POOLING_NAMES",
]

POOLING_NAMES = ("mean", "max", "cls", "genrep")
CACHE_VERSION = 1


def _drop_cls(backbone, hidden: torch.Tensor) -> torch.Tensor:
    return hidden[:, 1:] if getattr(backbone, "has_cls_token", False) else hidden


PoolFn = Callable[[torch.Tensor], torch.Tensor]


def resolve_pooling(pooling: str | Callable, backbone=None) -> tuple[PoolFn, str]:
    """Turn a pooling name or callable into ``(fn, cache_name)``.

    Names: ``"mean"`` / ``"max"``: over the content tokens (EAT's CLS token excluded);
    ``"cls"``: the CLS token (EAT only); ``"genrep"``: GenRep's per-frequency-patch time means,
    concatenated (patch-grid backbones: BEATs, EAT; CLS excluded), giving 8 x dim.
    A callable maps (batch, tokens, dim) -> (batch, D) and must carry a string attribute
    ``cache_name`` that identifies it in cache keys.
    """
    name_of = getattr(backbone, "name", "")
    if isinstance(pooling, str):
        if pooling == "mean":
            return (lambda h: mean_pool(_drop_cls(backbone, h))), "mean"
        if pooling == "max":
            return (lambda h: max_pool(_drop_cls(backbone, h))), "max"
        if pooling == "cls":
            if backbone is not None and not getattr(backbone, "has_cls_token", False):
                raise ValueError(f"pooling 'cls': backbone {name_of!r} has no CLS token; use 'mean'")
            return cls_pool, "cls"
        if pooling == "genrep":
            if backbone is not None and name_of not in ("beats", "eat"):
                raise ValueError(f"pooling 'genrep' needs a patch-grid backbone (beats, eat): {name_of!r}")
            return (lambda h: genrep_pool(_drop_cls(backbone, h))), "genrep"
        raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLING_NAMES} or a callable")
    if callable(pooling):
        cache_name = getattr(pooling, "cache_name", None)
        if not isinstance(cache_name, str) or not cache_name:
            raise ValueError(
                "a pooling callable needs a string attribute 'cache_name' naming it in cache keys "
                "(e.g. fn.cache_name = 'attentive-v1')"
            )
        return pooling, f"callable:{cache_name}"
    raise TypeError(f"pooling must be a name {POOLING_NAMES} or a callable, got {type(pooling).__name__}")


def state_dict_hash(module: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer (names, shapes, dtypes, bytes).

    Memoised on the module by the tensors' identities and in-place version counters, so repeated
    calls on an unchanged model are cheap and an optimizer step invalidates the memo.
    """
    state = module.state_dict(keep_vars=True)
    stamp = tuple((k, v.data_ptr(), v._version, tuple(v.shape)) for k, v in state.items())
    memo = getattr(module, "_asd_state_hash_memo", None)
    if memo is not None and memo[0] == stamp:
        return memo[1]
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    value = digest.hexdigest()
    object.__setattr__(module, "_asd_state_hash_memo", (stamp, value))
    return value


def backbone_identity(backbone) -> dict[str, Any]:
    """What identifies a backbone's function for cache keys (see the module docstring)."""
    sha = getattr(backbone, "checkpoint_sha256", None)
    if sha:
        weights = f"sha256-{sha}"
    else:
        weights = f"random-init-seed-{getattr(backbone, 'init_seed', None)}"
    options = backbone.preprocessing_options() if hasattr(backbone, "preprocessing_options") else {}
    return {
        "name": getattr(backbone, "name", type(backbone).__name__),
        "size": getattr(backbone, "size", None),
        "weights": weights,
        "state": state_dict_hash(backbone),
        "preprocessing": options,
    }


def _clip_identity(clips) -> tuple[str, str]:
    if isinstance(clips, (np.ndarray, torch.Tensor)):
        array = clips.detach().cpu().numpy() if isinstance(clips, torch.Tensor) else clips
        array = np.ascontiguousarray(array, dtype=np.float32)
        return "waves", f"{array.shape}:{hashlib.sha256(array.data).hexdigest()}"
    items = list(clips)
    if items and all(isinstance(c, (str, os.PathLike)) for c in items):
        try:  # the files' content, not where they are: a copied data root reuses the cache
            return "paths", f"files{len(items)}:{files_digest(Path(c).expanduser() for c in items)}"
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"extract_layer_embeddings: {exc}") from exc
    digest = hashlib.sha256()
    for c in items:
        a = c.detach().cpu().numpy() if isinstance(c, torch.Tensor) else c
        a = np.ascontiguousarray(a, dtype=np.float32)
        digest.update(f"{a.shape}".encode())
        digest.update(a.data)
    return "waves", f"list{len(items)}:{digest.hexdigest()}"


def _normalise_layers(layers: Sequence[int] | int, num_layers: int) -> list[int]:
    if isinstance(layers, (int, np.integer)):
        layers = [int(layers)]
    out = []
    for layer in layers:
        layer = int(layer)
        if layer < 0:
            layer = num_layers + 1 + layer
        if not 0 <= layer <= num_layers:
            raise ValueError(f"layer {layer} is out of range: hidden states are 0..{num_layers}")
        if layer not in out:
            out.append(layer)
    if not out:
        raise ValueError("layers is empty: give at least one hidden-state index")
    return out


def _batches(kind: str, clips, batch_size: int, clip_samples: int | None, fix_mode: str, sample_rate: int):
    """Yield (batch, samples) float32 numpy arrays."""

    if kind == "paths":
        paths = list(clips)
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            if clip_samples is not None:
                yield load_batch(chunk, sample_rate=sample_rate, n_samples=clip_samples, mode=fix_mode)
            else:
                yield from _equal_length_runs([load_audio(p, sample_rate=sample_rate) for p in chunk])
        return
    if isinstance(clips, (np.ndarray, torch.Tensor)):
        array = clips.detach().cpu().numpy() if isinstance(clips, torch.Tensor) else np.asarray(clips)
        if array.ndim != 2:
            raise ValueError(f"waves must be (N, samples), got shape {array.shape}")
        rows = list(array)
    else:
        rows = [c.detach().cpu().numpy() if isinstance(c, torch.Tensor) else np.asarray(c) for c in clips]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        if clip_samples is not None:
            chunk = [fix_length(np.asarray(w, dtype=np.float32), clip_samples, fix_mode) for w in chunk]
        yield from _equal_length_runs(chunk)


def _equal_length_runs(waves: list):
    """Yield the consecutive runs of equal-length clips of ``waves`` as (run, samples) float32
    arrays, in order: without ``clip_samples`` every clip is embedded at its own length (pooling
    makes the embeddings comparable), and a clip's embedding never depends on its batch mates."""
    start = 0
    for end in range(1, len(waves) + 1):
        if end == len(waves) or len(waves[end]) != len(waves[start]):
            yield np.stack(waves[start:end]).astype(np.float32)
            start = end


def _n_clips(clips) -> int:
    if isinstance(clips, (np.ndarray, torch.Tensor)):
        return int(clips.shape[0])
    return len(clips)


def extract_layer_embeddings(
    backbone,
    paths_or_waves,
    *,
    layers: Sequence[int] | int,
    pooling: str | Callable = "mean",
    batch_size: int = 8,
    clip_samples: int | None = None,
    cache_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    amp: bool = True,
    fix_mode: str = "tile",
    sample_rate: int = 16000,
) -> dict[int, np.ndarray]:
    """Pooled embeddings of the chosen hidden states for every clip.

    backbone: a ``Backbone`` (``hidden_states(waves) -> [input, layer 1..L]``).
    paths_or_waves: audio paths (read at ``sample_rate``), an (N, samples) array / tensor, or a
        list of 1-D waveforms (float, 16 kHz, [-1, 1]).
    layers: hidden-state indices (0 = input, L = last; negative counts from the end).
    pooling: ``"mean"``, ``"max"``, ``"cls"``, ``"genrep"`` or a callable with ``cache_name``
        (see ``resolve_pooling``).
    batch_size: clips per forward pass. clip_samples: crop/tile (``fix_mode``) every clip to this
        many samples; None requires equal lengths.
    cache_dir: folder for the ``.npz`` cache; None disables caching.
    device: where to run (``"cpu"``, ``"cuda"``, ``"auto"``); None keeps the backbone's device.
        The backbone is moved there and runs in eval mode (its train/eval mode is restored).
    progress: tqdm progress bar over batches. amp: fp16 autocast on CUDA (no effect on CPU).

    Returns ``{layer: (N, D) float32}`` with ``layer`` normalised to 0..L, in the order given.

    Under torchrun (:mod:`asd_utils.training.distributed`) each process embeds a contiguous shard of
    the clips, every process gets all rows back in clip order, and only rank 0 writes the cache.
    """
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    layer_list = _normalise_layers(layers, int(backbone.num_layers))
    pool_fn, pool_name = resolve_pooling(pooling, backbone)
    n = _n_clips(paths_or_waves)
    if n == 0:
        raise ValueError("no clips given")

    ingredients = None
    if cache_dir is not None:
        kind, clip_id = _clip_identity(paths_or_waves)
        ingredients = {
            "version": CACHE_VERSION,
            "backbone": backbone_identity(backbone),
            "layers": layer_list,
            "pooling": pool_name,
            "clip_samples": clip_samples,
            "fix_mode": fix_mode,
            "sample_rate": sample_rate,
            "clips": {"kind": kind, "items": clip_id},
        }
    else:
        kind = "paths" if (not isinstance(paths_or_waves, (np.ndarray, torch.Tensor))
                           and all(isinstance(c, (str, os.PathLike)) for c in paths_or_waves)) else "waves"

    def compute() -> dict[str, np.ndarray]:
        result = _extract(backbone, paths_or_waves, kind, n, layer_list, pool_fn, batch_size=batch_size,
                          clip_samples=clip_samples, device=device, progress=progress, amp=amp, fix_mode=fix_mode,
                          sample_rate=sample_rate)
        return {f"layer_{layer}": rows for layer, rows in result.items()}

    # under torchrun every process computes its shard (collective: no lock) and only rank 0 writes
    arrays = cached_arrays(cache_dir, ingredients, compute, code=[__name__, type(backbone).__module__],
                           name=f"{getattr(backbone, 'name', 'backbone')}-{getattr(backbone, 'size', 'na')}",
                           save=dist_utils.is_main_process(), lock=not dist_utils.is_distributed())
    dist_utils.barrier()
    return {layer: arrays[f"layer_{layer}"] for layer in layer_list}


def _extract(backbone, paths_or_waves, kind: str, n: int, layer_list: list[int], pool_fn, *, batch_size: int,
             clip_samples: int | None, device, progress: bool, amp: bool, fix_mode: str,
             sample_rate: int) -> dict[int, np.ndarray]:
    """The uncached work of :func:`extract_layer_embeddings`: ``{layer: (n, D) float32}``, every
    process's shard gathered in clip order under torchrun."""
    params = list(backbone.parameters())
    if device is not None:
        run_device = resolve_device(device)
    else:
        run_device = params[0].device if params else torch.device("cpu")
    backbone.to(run_device)
    was_training = backbone.training
    backbone.eval()
    outputs: dict[int, list[np.ndarray]] = {layer: [] for layer in layer_list}
    local_clips = paths_or_waves
    if dist_utils.is_distributed():
        local_clips = paths_or_waves[dist_utils.shard_slice(n)]
    n_batches = -(-_n_clips(local_clips) // int(batch_size))
    bar = tqdm(total=n_batches, desc=f"{getattr(backbone, 'name', 'backbone')} embeddings", unit="batch",
               disable=not progress or not dist_utils.is_main_process())
    try:
        with torch.inference_mode():
            for batch in _batches(kind, local_clips, int(batch_size), clip_samples, fix_mode, sample_rate):
                waves = torch.from_numpy(batch).to(run_device)
                with autocast_context(run_device, enabled=amp):
                    states = backbone.hidden_states(waves)
                    for layer in layer_list:
                        pooled = pool_fn(states[layer])
                        outputs[layer].append(pooled.float().cpu().numpy())
                bar.update(1)
    finally:
        bar.close()
        backbone.train(was_training)
    result = {layer: (np.concatenate(parts, axis=0).astype(np.float32) if parts
                      else np.zeros((0, 0), dtype=np.float32)) for layer, parts in outputs.items()}
    return {layer: dist_utils.gather_rows(rows, n) for layer, rows in result.items()}
