"""Make the EAT golden fixture from the official implementation (not part of the project).

How the fixture was made (once; the output is committed, the official code is not):

    git clone https://github.com/TakuyaFujimura/dcase-asd-toolkit   # ASDKit
    python scripts/make_eat_golden.py --asdkit-dir path/to/dcase-asd-toolkit

ASDKit vendors the official EAT code (https://github.com/cwx-worst-one/EAT) unchanged under
``asdkit/models/pretrained_models/eat/EAT`` and wraps it in
``asdkit/models/pretrained_models/eat/tools.py`` (front end ``preprocess``, clip length
``calc_target_length``, checkpoint loading ``construct_data2vec``). This script imports, unmodified:

- ``EAT.models.EAT_pretraining.Data2VecMultiModel`` with its ``images.ImageEncoder``,
  ``base.ModalitySpecificEncoder`` and ``modules.AltBlock`` / ``AltAttention`` / ``BlockEncoder``
  / ``FixedPositionalEncoder`` (imported as the package ``EAT``, the name fairseq's
  ``import_user_module`` gives a user directory called ``EAT``);
- ASDKit's ``tools.preprocess`` and ``tools.calc_target_length``.

and does what ``tools.construct_data2vec`` + ``EATFrozenModel.extract`` do, without fairseq:

1. Build the tiny pre-training model (``Data2VecMultiConfig`` of the released
   ``config/pretraining_AS2M.yaml``: post-norm ``layer_norm_first=False``, ``prenet_depth=0``,
   one CLS token, no ALiBi, a CNN decoder; sizes of the project's ``tiny`` preset: 64-d, 2 blocks,
   4 heads; a 16-time-patch position table), perturb every parameter except the fixed sin-cos
   positions so that no LayerNorm or bias sits at its initial value, and save it as fairseq
   saves a checkpoint: ``{"args": None, "cfg": OmegaConf.to_container(cfg), "model":
   model.state_dict(), ...}`` (the config is a plain nested dict whose ``supported_modality`` and
   ``modalities.image.type`` are the EAT ``Modality`` enum members, as fairseq's trainer writes
   them). There is no ``_ema`` teacher copy (it would double the file; it is dropped by rule).
2. Build a second model as ``construct_data2vec`` does (``target_length`` from
   ``calc_target_length``, drop-path 0.1, dropouts 0), ``load_state_dict(strict=True)``,
   ``remove_pretraining_modules(modality="image")``, ``eval()``.
3. Run ``extract_features(preprocess(waves, target_length), mode="IMAGE", mask=False,
   remove_extra_tokens=False)`` on two 1 s clips and record, with forward hooks, the input to the
   first block (``context_encoder`` output, after its LayerNorm) and every block's output.

Writes

- ``tests/fixtures/eat_tiny_official.pt``: the checkpoint of step 1;
- ``tests/fixtures/eat_tiny_official.npz``: ``waves`` (2, 16000), ``image`` (the official front
  end's output, (2, 1, 128, 128)), ``target_length``, ``hidden_0`` (input to block 1),
  ``hidden_1..2`` (block outputs; ``hidden_2`` equals ``extract_features(...)["x"]``).

Stand-ins for imports the official code makes (installed in ``sys.modules`` of this process only;
none of them is on the forward path except ``fbank``, ``Mlp`` and ``DropPath``):

- ``torchaudio.compliance.kaldi.fbank`` -> :func:`asd_utils.features.fbank.kaldi_fbank`, which
  matches torchaudio to float32 precision (``tests/test_fbank.py``); torchaudio does not import
  here. So the fixture covers the whole forward from the waveform, with the project's fbank in
  place of torchaudio's.
- timm's ``Mlp`` (fc1 -> GELU -> dropout -> fc2 -> dropout, as ``timm/layers/mlp.py``), ``DropPath``
  (identity in eval), ``to_2tuple``;
- fairseq: ``BaseFairseqModel`` (an ``nn.Module``), ``register_model`` (no registry),
  ``FairseqDataclass`` (a dataclass base), ``init_bert_params`` (N(0, 0.02) Linear weights, zero
  biases), the decoder helpers ``LayerNorm`` / ``SamePad2d`` / ``TransposeLast`` and names that are
  imported but never called (EMA, masking, ``GradMultiply``, ...);
- omegaconf: ``II`` / ``MISSING`` (interpolation strings), ``open_dict`` (no-op).

Python >= 3.11 refuses the official configs' dataclass-instance defaults (``decoder:
D2vDecoderConfig = D2vDecoderConfig()``); while the official modules are imported,
``dataclasses.dataclass`` keeps ``object.__hash__`` on the classes it makes, which restores the
behaviour of the Python versions fairseq was written for and changes nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import importlib
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asd_utils.features.fbank import kaldi_fbank  # noqa: E402

EAT_SUBDIR = Path("asdkit/models/pretrained_models/eat")
EMBED_DIM, DEPTH, HEADS = 64, 2, 4  # the project's "tiny" preset
MAX_LENGTH = 16  # time patches in the fixed position table (the release: 768)
CLIP_SECONDS = 1.0


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def _never_called(name: str):
    def stub(*args, **kwargs):
        raise RuntimeError(f"stand-in {name} is not meant to run in inference")

    return stub


def _install_stand_ins() -> None:
    """The few third-party names the official EAT modules import (see the module docstring)."""

    # torchaudio: the official call is fbank((1, samples), **options) -> (frames, bins)
    _module("torchaudio")
    _module("torchaudio.compliance")
    _module("torchaudio.compliance.kaldi", fbank=lambda waveform, **options: kaldi_fbank(waveform, **options)[0])

    # omegaconf
    _module("omegaconf", II=lambda key: "${" + key + "}", MISSING="???", open_dict=contextlib.nullcontext)

    # timm
    def to_2tuple(x):
        return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

    class Mlp(nn.Module):  # timm/layers/mlp.py, default arguments (no norm layer, bias, Linear)
        def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, drop=0.0):
            super().__init__()
            out_features = out_features or in_features
            hidden_features = hidden_features or in_features
            self.fc1 = nn.Linear(in_features, hidden_features)
            self.act = act_layer()
            self.drop1 = nn.Dropout(drop)
            self.norm = nn.Identity()
            self.fc2 = nn.Linear(hidden_features, out_features)
            self.drop2 = nn.Dropout(drop)

        def forward(self, x):
            return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))

    class DropPath(nn.Module):  # timm: per-sample stochastic depth in training, identity in eval
        def __init__(self, drop_prob=0.0, scale_by_keep=True):
            super().__init__()
            self.drop_prob = drop_prob
            self.scale_by_keep = scale_by_keep

        def forward(self, x):
            if self.drop_prob == 0.0 or not self.training:
                return x
            keep = 1 - self.drop_prob
            mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
            return x * mask / keep if self.scale_by_keep else x * mask

    _module("timm")
    _module("timm.models")
    _module("timm.models.layers", to_2tuple=to_2tuple, DropPath=DropPath, Mlp=Mlp)
    _module(
        "timm.models.vision_transformer",
        PatchEmbed=_never_called("timm PatchEmbed"),
        Block=_never_called("timm Block"),
        DropPath=DropPath,
        Mlp=Mlp,
    )

    # fairseq
    class BaseFairseqModel(nn.Module):
        def set_num_updates(self, num_updates):
            pass

    def register_model(name, dataclass=None):
        return lambda cls: cls

    @dataclasses.dataclass
    class FairseqDataclass:
        pass

    def init_bert_params(module):  # fairseq.modules.transformer_sentence_encoder
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if module.bias is not None:
                module.bias.data.zero_()
        if isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=0.02)

    def layer_norm(normalized_shape, eps=1e-5, elementwise_affine=True, export=False):
        return nn.LayerNorm(normalized_shape, eps, elementwise_affine)

    class SamePad2d(nn.Module):
        def __init__(self, kernel_size):
            super().__init__()
            self.remove = 1 if kernel_size % 2 == 0 else 0

        def forward(self, x):
            return x[:, :, : -self.remove, : -self.remove] if self.remove > 0 else x

    class TransposeLast(nn.Module):
        def __init__(self, deconstruct_idx=None, tranpose_dim=-2):
            super().__init__()
            self.deconstruct_idx = deconstruct_idx
            self.tranpose_dim = tranpose_dim

        def forward(self, x):
            if self.deconstruct_idx is not None:
                x = x[self.deconstruct_idx]
            return x.transpose(self.tranpose_dim, -1)

    _module("fairseq")
    _module("fairseq.dataclass", FairseqDataclass=FairseqDataclass)
    _module("fairseq.models", BaseFairseqModel=BaseFairseqModel, register_model=register_model)
    _module("fairseq.models.wav2vec")
    _module("fairseq.models.wav2vec.wav2vec2", TransformerSentenceEncoderLayer=_never_called("wav2vec2 layer"))
    _module("fairseq.tasks", FairseqTask=object, setup_task=_never_called("setup_task"))
    _module("fairseq.checkpoint_utils", load_checkpoint_to_cpu=_never_called("load_checkpoint_to_cpu"))
    _module(
        "fairseq.modules",
        EMAModule=_never_called("EMAModule"),
        EMAModuleConfig=_never_called("EMAModuleConfig"),
        GradMultiply=_never_called("GradMultiply"),
        LayerNorm=layer_norm,
        SamePad=_never_called("SamePad"),
        SamePad2d=SamePad2d,
        TransposeLast=TransposeLast,
    )
    _module("fairseq.modules.transformer_sentence_encoder", init_bert_params=init_bert_params)
    _module("fairseq.data")
    _module("fairseq.data.data_utils", compute_mask_indices=_never_called("compute_mask_indices"))
    _module(
        "fairseq.utils", index_put=_never_called("index_put"), import_user_module=_never_called("import_user_module")
    )


@contextlib.contextmanager
def _hashable_dataclasses():
    """Dataclasses made while the official modules import keep ``object.__hash__`` (see docstring)."""
    real = dataclasses.dataclass

    def keep_hash(cls):
        if cls.__dict__.get("__hash__", object.__hash__) is None:
            cls.__hash__ = object.__hash__
        return cls

    def dataclass(cls=None, /, **kwargs):
        if cls is None:
            return lambda c: keep_hash(real(c, **kwargs))
        return keep_hash(real(cls, **kwargs))

    dataclasses.dataclass = dataclass
    try:
        yield
    finally:
        dataclasses.dataclass = real


def _import_official(asdkit_dir: Path):
    eat_dir = (asdkit_dir / EAT_SUBDIR).resolve()
    if not (eat_dir / "EAT" / "models" / "EAT_pretraining.py").is_file():
        raise SystemExit(f"{eat_dir}/EAT/models/EAT_pretraining.py not found: is {asdkit_dir} an ASDKit checkout?")
    _install_stand_ins()
    sys.path.insert(0, str(eat_dir))  # the EAT user directory imports as the package "EAT"
    tools_pkg = types.ModuleType("asdkit_eat")  # tools.py without asdkit's package __init__ (LoRA, peft)
    tools_pkg.__path__ = [str(eat_dir)]
    sys.modules["asdkit_eat"] = tools_pkg
    with _hashable_dataclasses():
        pretraining = importlib.import_module("EAT.models.EAT_pretraining")
        images = importlib.import_module("EAT.models.images")
        modules = importlib.import_module("EAT.models.modules")
        tools = importlib.import_module("asdkit_eat.tools")
    return pretraining, images, modules, tools


def _configs(pretraining, images, modules, target_length: int, *, construct: bool):
    """``Data2VecMultiConfig`` of ``config/pretraining_AS2M.yaml`` at the tiny sizes; with
    ``construct`` the overrides ``tools.construct_data2vec`` applies before building the model."""
    image = images.D2vImageConfig(
        in_chans=1,
        patch_size=16,
        embed_dim=EMBED_DIM,
        target_length=target_length,
        max_length=MAX_LENGTH,
        inverse_mask=True,
        mask_prob=0.8,
        mask_prob_adjust=0.07,
        mask_length=5,
        mask_noise_std=0.01,
        prenet_depth=0,
        ema_local_encoder=True,
        num_extra_tokens=1,
        init_extra_token_zero=False,
        use_alibi_encoder=False,
        decoder=modules.D2vDecoderConfig(
            decoder_dim=16, decoder_groups=16, decoder_kernel=3, decoder_layers=1, input_dropout=0.0
        ),
    )
    model = dict(
        depth=DEPTH,
        num_heads=HEADS,
        embed_dim=EMBED_DIM,
        norm_eps=1e-6,
        layer_norm_first=False,
        average_top_k_layers=DEPTH,
        clone_batch=16,
        instance_norm_target_layer=True,
        layer_norm_targets=True,
        ema_decay=0.9998,
        ema_end_decay=0.99999,
        ema_anneal_end_step=100000,
        min_target_var=0,
        min_pred_var=0,
        encoder_dropout=0.0,
        post_mlp_drop=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        supported_modality=pretraining.Modality.IMAGE,
        cls_loss=1,
        ema_encoder_only=False,
        skip_ema=True,
        modalities=pretraining.D2vModalitiesConfig(image=image),
    )
    if construct:  # tools.construct_data2vec(drop_path_rate=0.1, other dropouts 0)
        dpr = np.linspace(0, 0.1, DEPTH).tolist()
        image.start_drop_path_rate = dpr[0]
        image.end_drop_path_rate = max(0, dpr[-1])  # dpr[prenet_depth - 1] with prenet_depth 0
        model.update(start_drop_path_rate=dpr[0], end_drop_path_rate=dpr[-1], dropout_input=0.0, layerdrop=0.0)
        image.prenet_layerdrop = 0.0
        image.prenet_dropout = 0.0
    return pretraining.Data2VecMultiConfig(**model)


def _to_container(obj):
    """What ``OmegaConf.to_container(cfg)`` gives for a structured config: nested plain dicts and
    lists, enum members kept (fairseq's trainer does not pass ``enum_to_str``)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_container(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_container(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_container(v) for k, v in obj.items()}
    assert obj is None or isinstance(obj, (bool, int, float, str, enum.Enum)), type(obj)
    return obj


def test_waves(n: int = 2, samples: int = int(16000 * CLIP_SECONDS), seed: int = 0) -> torch.Tensor:
    """Deterministic clips: a DC offset (removed by the front end), harmonic tones with amplitude
    modulation, a chirp, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000.0
    waves = []
    for i in range(n):
        f0 = 150.0 + 90.0 * i
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
        am = 1.0 + 0.5 * np.sin(2 * np.pi * (2.0 + i) * t)
        chirp = np.sin(2 * np.pi * (500.0 + 1500.0 * t) * t * (1 + i))
        waves.append(0.03 * (i + 1) + 0.1 * tone * am + 0.05 * chirp + 0.02 * rng.standard_normal(samples))
    return torch.tensor(np.stack(waves), dtype=torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--asdkit-dir", required=True, type=Path, help="checkout of TakuyaFujimura/dcase-asd-toolkit")
    parser.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "eat_tiny_official"))
    args = parser.parse_args()
    pretraining, images, modules, tools = _import_official(args.asdkit_dir)

    target_length = tools.calc_target_length(sec=CLIP_SECONDS, sr=16000)  # ceil(frames / 32) * 32
    modalities = [pretraining.Modality.IMAGE]

    # 1. the pre-training checkpoint
    torch.manual_seed(0)
    cfg = _configs(pretraining, images, modules, target_length=1024, construct=False)
    trained = pretraining.Data2VecMultiModel(cfg, modalities, skip_ema=True)
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if name.endswith("fixed_positional_encoder.positions"):
                continue  # fixed sin-cos table, as released
            scale = 0.1 if ("norm" in name or "extra_tokens" in name) else 0.05
            param.add_(scale * torch.randn_like(param))
    state = {k: v.detach().clone() for k, v in trained.state_dict().items()}
    model_cfg = _to_container(cfg)
    model_cfg["_name"] = "data2vec_multi"
    checkpoint = {
        "args": None,
        "cfg": {
            "_name": None,
            "common": {"fp16": True, "seed": 1, "user_dir": "EAT"},
            "task": {"_name": "mae_image_pretraining", "target_length": 1024, "audio_mae": True},
            "model": model_cfg,
        },
        "model": state,
        "criterion": None,
        "optimizer_history": [{"criterion_name": "ModelCriterion", "optimizer_name": "FairseqAdam", "num_updates": 0}],
        "task_state": {},
        "extra_state": {"previous_training_time": 0.0, "epoch": 30},
        "last_optimizer_state": None,
    }

    # 2. loaded as tools.construct_data2vec does
    model = pretraining.Data2VecMultiModel(
        _configs(pretraining, images, modules, target_length=target_length, construct=True), modalities, skip_ema=True
    )
    model.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True)
    model.remove_pretraining_modules(modality="image")
    model.eval()

    # 3. EATFrozenModel.extract, with every block's output recorded
    captured: dict[int, torch.Tensor] = {}
    encoder = model.modality_encoders["IMAGE"]
    hooks = [encoder.context_encoder.register_forward_hook(lambda m, i, o: captured.__setitem__(0, o))]
    for index, block in enumerate(model.blocks, start=1):
        hooks.append(block.register_forward_hook(lambda m, i, o, index=index: captured.__setitem__(index, o[0])))
    waves = test_waves()
    image = tools.preprocess(source=waves, target_length=target_length)
    with torch.no_grad():
        feats = model.extract_features(image, mode="IMAGE", mask=False, remove_extra_tokens=False)
    for hook in hooks:
        hook.remove()
    assert torch.equal(feats["x"], captured[DEPTH]), "no final norm after the blocks when layer_norm_first=False"

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out.with_suffix(".pt"))
    arrays = {"waves": waves.numpy(), "image": image.numpy(), "target_length": np.array(target_length)}
    arrays.update({f"hidden_{i}": captured[i].numpy() for i in sorted(captured)})
    np.savez_compressed(out.with_suffix(".npz"), **arrays)
    sizes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items())
    print(f"wrote {out}.pt ({out.with_suffix('.pt').stat().st_size} B) and {out}.npz: {sizes}")


if __name__ == "__main__":
    main()
