"""FusionModel / PretrainedBranch (asd_utils.models.fusion) and the report-003 systems built on them."""

from __future__ import annotations

import pytest
import torch

from asd_utils.config import load_config
from asd_utils.methods import xju
from asd_utils.models import FFTBranch
from asd_utils.models.fusion import FusionModel, PretrainedBranch

N = 8000  # 0.5 s at 16 kHz


class _Const(torch.nn.Module):
    """A branch that returns fixed per-sample vectors (for the normalisation tests)."""

    def __init__(self, out_dim):
        super().__init__()
        self.out_dim = out_dim
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, waves):
        return self.scale * torch.arange(1.0, self.out_dim + 1).repeat(len(waves), 1) * waves[:, :1].abs()


def test_concatenation_order_slices_and_normalisation():
    torch.manual_seed(0)
    waves = torch.randn(3, N)
    model = FusionModel({"a": _Const(4), "fft": _Const(6)}, normalise={"fft": "l2"}).eval()
    out = model(waves)
    assert out.shape == (3, 10) and model.dim == 10
    assert model.branch_slices == {"a": slice(0, 4), "fft": slice(4, 10)}
    torch.testing.assert_close(out[:, :4], model.branches["a"](waves))
    torch.testing.assert_close(out[:, 4:].norm(dim=1), torch.ones(3))
    ln = FusionModel({"a": _Const(6)}, normalise={"a": "layernorm"})(waves)
    torch.testing.assert_close(ln.mean(dim=1), torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(ln.var(dim=1, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)


def test_bad_fusion_arguments_raise():
    with pytest.raises(ValueError, match="at least one"):
        FusionModel({})
    with pytest.raises(ValueError, match="unknown branches"):
        FusionModel({"a": _Const(2)}, normalise={"b": "l2"})
    with pytest.raises(ValueError, match="normalisation"):
        FusionModel({"a": _Const(2)}, normalise={"a": "batchnorm"})


def test_fft_branch_output_does_not_depend_on_the_batch_in_eval_mode():
    torch.manual_seed(0)
    branch = FFTBranch(N, 128, width=0.125)
    branch.train()
    for _ in range(3):  # give the batch-norm layers non-trivial running statistics
        branch(torch.randn(8, N))
    branch.eval()
    waves = torch.randn(6, N)
    with torch.no_grad():
        together = branch(waves)
        alone = torch.cat([branch(waves[i:i + 1]) for i in range(6)])
        other = branch(torch.cat([waves[:2], torch.randn(5, N) * 3.0]))[:2]
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together[:2], other, atol=1e-5, rtol=1e-5)


def _tiny_cfg():
    cfg = load_config("05_xju", "smoke")["model"]
    return cfg


@pytest.mark.parametrize("system,dim", [("BEATs-FFT", 256), ("EAT-FFT", 256), ("EAT-BEATs", 256),
                                        ("EAT-BEATs-FFT", 384)])
def test_each_system_builds_its_branches_and_is_batch_independent(system, dim):
    cfg = _tiny_cfg()
    backbones = xju.load_backbones(system, cfg, {}, crop_samples=N, seed=0)
    assert sorted(backbones) == sorted(b for b in xju.SYSTEM_BRANCHES[system] if b != "fft")
    assert all(not b.pretrained for b in backbones.values())  # untrained stand-ins
    model = xju.build_system(system, cfg, backbones, crop_samples=N, seed=0)
    assert list(model.branches) == list(xju.SYSTEM_BRANCHES[system])
    assert model.dim == dim
    assert all(isinstance(model.branches[b], PretrainedBranch) for b in backbones)
    expected_norm = "l2" if system == "EAT-BEATs-FFT" else "none"
    if "fft" in model.branches:
        assert model.normalise["fft"] == expected_norm
    model.eval()
    waves = torch.randn(3, N) * 0.1
    with torch.no_grad():
        together = model(waves)
        alone = torch.cat([model(waves[i:i + 1]) for i in range(3)])
    assert together.shape == (3, dim)
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
    if system == "EAT-BEATs-FFT":
        torch.testing.assert_close(together[:, model.branch_slices["fft"]].norm(dim=1), torch.ones(3))


def test_same_seed_same_model_and_unknown_system():
    cfg = _tiny_cfg()
    a = xju.build_system("EAT-FFT", cfg, xju.load_backbones("EAT-FFT", cfg, {}, crop_samples=N), crop_samples=N)
    b = xju.build_system("EAT-FFT", cfg, xju.load_backbones("EAT-FFT", cfg, {}, crop_samples=N), crop_samples=N)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(ValueError, match="unknown system"):
        xju.build_system("FFT-only", cfg, {}, crop_samples=N)


def test_configured_checkpoints_are_used_for_their_branch(tmp_path):
    """A configured BEATs / EAT checkpoint is loaded for its branch, whatever the stand-in size."""
    from asd_utils.backbones import load_backbone
    from asd_utils.backbones.beats import save_beats_checkpoint
    from asd_utils.backbones.eat import save_eat_hf

    beats_path = save_beats_checkpoint(load_backbone("beats", None, size="tiny", seed=5), tmp_path / "beats.pt")
    eat_dir = tmp_path / "eat"
    save_eat_hf(load_backbone("eat", None, size="tiny", seed=6), eat_dir)
    cfg = _tiny_cfg()
    for name in ("beats", "eat"):
        cfg["backbones"][name]["checkpoint_size"] = "tiny"  # the checkpoints written above are tiny
    ckpts = {"beats": str(beats_path), "eat": str(eat_dir)}
    backbones = xju.load_backbones("EAT-BEATs-FFT", cfg, ckpts, crop_samples=N)
    assert backbones["beats"].pretrained and backbones["eat"].pretrained
    assert backbones["beats"].checkpoint_sha256 and backbones["eat"].checkpoint_sha256
    half = xju.load_backbones("EAT-BEATs", cfg, {"eat": str(eat_dir)}, crop_samples=N)
    assert half["eat"].pretrained and not half["beats"].pretrained
