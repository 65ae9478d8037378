"""Make the BEATs golden fixture from the official implementation (not part of the project).

How the fixture was made (once; the output is committed, the official code is not):

    mkdir -p path/to/beats_official
    # from a checkout of https://github.com/microsoft/unilm: beats/{BEATs,backbone,modules}.py
    cp unilm/beats/{BEATs,backbone,modules}.py path/to/beats_official/
    python scripts/make_beats_golden.py --official-dir path/to/beats_official

It builds the official ``BEATs`` with a tiny configuration (the ``tiny`` preset of
``asd_utils.backbones.beats``, fine-tuned head with 5 classes, DeepNorm, gated relative position
bias with the base model's 320 buckets / max distance 800), perturbs every parameter so that no
LayerNorm, gate or bias sits at its trivial initial value, and writes

- ``tests/fixtures/beats_tiny_official.pt``: ``{"cfg", "model", "label_dict"}`` as the official
  checkpoints (weight-norm keys ``encoder.pos_conv.0.weight_g`` / ``weight_v`` included);
- ``tests/fixtures/beats_tiny_official.npz``: ``waves`` (2, 32000) and the official outputs
  ``hidden_0`` (encoder input after position convolution and LayerNorm), ``hidden_1..L`` (each
  layer's output, batch first) and ``lprobs`` (the fine-tuned head's clip probabilities).

torchaudio cannot be imported here, so the official code's ``torchaudio.compliance.kaldi.fbank``
is replaced by :func:`asd_utils.features.fbank.kaldi_fbank`, which matches torchaudio to float32
precision (``tests/test_fbank.py``).
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asd_utils.backbones.beats import BEATS_SIZES, BEATsConfig  # noqa: E402
from asd_utils.features.fbank import kaldi_fbank  # noqa: E402


def _install_fake_torchaudio() -> None:
    """Make ``import torchaudio.compliance.kaldi as ta_kaldi`` resolve to our Kaldi fbank."""

    def fbank(waveform, **options):  # official call: (1, samples) -> (frames, bins)
        return kaldi_fbank(waveform, **options)[0]

    kaldi = types.ModuleType("torchaudio.compliance.kaldi")
    kaldi.fbank = fbank
    compliance = types.ModuleType("torchaudio.compliance")
    compliance.kaldi = kaldi
    torchaudio = types.ModuleType("torchaudio")
    torchaudio.compliance = compliance
    sys.modules.update(
        {"torchaudio": torchaudio, "torchaudio.compliance": compliance, "torchaudio.compliance.kaldi": kaldi}
    )


def test_waves(n: int = 2, samples: int = 32000, seed: int = 0) -> torch.Tensor:
    """Deterministic 2 s test clips: harmonic tones with amplitude modulation plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000.0
    waves = []
    for i in range(n):
        f0 = 180.0 + 70.0 * i
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
        am = 1.0 + 0.5 * np.sin(2 * np.pi * (1.5 + i) * t)
        waves.append(0.2 * tone * am / 2.0 + 0.05 * rng.standard_normal(samples))
    return torch.tensor(np.stack(waves), dtype=torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official-dir", required=True, help="folder holding the official BEATs.py etc.")
    parser.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "beats_tiny_official"))
    args = parser.parse_args()

    _install_fake_torchaudio()
    sys.path.insert(0, str(Path(args.official_dir).resolve()))
    import BEATs as official  # noqa: N813  (the official module's name)

    torch.manual_seed(0)
    cfg = BEATsConfig(**BEATS_SIZES["tiny"], finetuned_model=True, predictor_class=5).to_dict()
    model = official.BEATs(official.BEATsConfig(cfg))
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.1 if ("norm" in name or "grep_a" in name or "weight_g" in name) else 0.02
            if "relative_attention_bias" in name or "grep_linear" in name:
                scale = 1.0  # make the gated position bias matter in the outputs
            param.add_(scale * torch.randn_like(param))
    model.eval()

    captured: dict[int, torch.Tensor] = {}
    hooks = [model.encoder.layer_norm.register_forward_hook(lambda m, i, o: captured.__setitem__(0, o))]
    for index, layer in enumerate(model.encoder.layers, start=1):
        hooks.append(
            layer.register_forward_hook(
                lambda m, i, o, index=index: captured.__setitem__(index, o[0].transpose(0, 1))
            )
        )
    waves = test_waves()
    with torch.no_grad():
        lprobs, _ = model.extract_features(waves)
    for hook in hooks:
        hook.remove()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    label_dict = {i: f"/m/test{i}" for i in range(cfg["predictor_class"])}
    torch.save({"cfg": cfg, "model": state, "label_dict": label_dict}, out.with_suffix(".pt"))
    arrays = {"waves": waves.numpy(), "lprobs": lprobs.numpy()}
    arrays.update({f"hidden_{i}": captured[i].numpy() for i in sorted(captured)})
    np.savez_compressed(out.with_suffix(".npz"), **arrays)
    print(f"wrote {out}.pt and {out}.npz: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()
