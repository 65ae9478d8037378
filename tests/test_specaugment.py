"""SpecAugment masking (asd_utils.training.specaugment) and its hook on BEATs/EAT fbanks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asd_utils.training.specaugment import SpecAugment, mask_along


def _masked_runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of the runs of True in a 1-D bool array."""
    runs, start = [], None
    for i, v in enumerate(list(row) + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def test_identity_in_eval_mode_and_with_p_zero():
    spec = torch.randn(4, 1, 50, 32)
    aug = SpecAugment(20, 8).eval()
    assert torch.equal(aug(spec), spec)
    aug = SpecAugment(20, 8, p=0.0).train()
    assert torch.equal(aug(spec), spec)


def test_masks_are_bands_within_the_configured_widths():
    torch.manual_seed(0)
    spec = torch.randn(64, 1, 100, 40) + 10.0  # no natural zeros
    aug = SpecAugment(time_mask_param=30, freq_mask_param=8, mask_value=0.0).train()
    out = aug(spec)
    assert out.shape == spec.shape
    masked = (out == 0).numpy()[:, 0]
    changed = out != spec
    assert torch.equal(changed, out == 0)  # only masked cells change, to the mask value
    widths_t, widths_f = [], []
    for b in range(64):
        time_rows = masked[b].all(axis=1)   # frames masked over every bin
        freq_cols = masked[b].all(axis=0)   # bins masked over every frame
        runs_t, runs_f = _masked_runs(time_rows), _masked_runs(freq_cols)
        assert len(runs_t) <= 1 and len(runs_f) <= 1  # one mask of each kind: one contiguous band
        widths_t += [w for _, w in runs_t]
        widths_f += [w for _, w in runs_f]
        # every masked cell lies in the time band or the frequency band
        cover = np.zeros_like(masked[b])
        for s, w in runs_t:
            cover[s:s + w] = True
        for s, w in runs_f:
            cover[:, s:s + w] = True
        assert np.array_equal(cover, masked[b])
    assert max(widths_t) <= 30 and max(widths_f) <= 8
    assert max(widths_t) > 15  # widths are drawn up to the parameter, not fixed small
    assert len(widths_t) > 40  # most samples got a time mask (width 0 has probability 1/31)


def test_draws_follow_the_generator():
    spec = torch.randn(3, 1, 40, 16) + 5
    a = SpecAugment(10, 4, generator=torch.Generator().manual_seed(3)).train()(spec)
    b = SpecAugment(10, 4, generator=torch.Generator().manual_seed(3)).train()(spec)
    assert torch.equal(a, b)


def test_mask_along_only_touches_active_rows():
    spec = torch.ones(4, 20, 6)
    active = torch.tensor([True, False, True, False])
    torch.manual_seed(1)
    out = mask_along(spec, -2, 20, 3, -1.0, active)
    assert torch.equal(out[~active], spec[~active])
    assert (out[active] == -1.0).any()


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="mask parameters"):
        SpecAugment(-1)
    with pytest.raises(ValueError, match="p must"):
        SpecAugment(p=1.5)
    with pytest.raises(ValueError, match="frames, bins"):
        SpecAugment().augment(torch.randn(5, 5))


@pytest.mark.parametrize("name", ["beats", "eat"])
def test_hook_masks_the_backbone_fbank_in_training_mode_only(name):
    from asd_utils.backbones import load_backbone
    from asd_utils.models.fusion import attach_spec_augment, patch_embedding_module

    kwargs = {"target_length": 96} if name == "eat" else {}
    backbone = load_backbone(name, None, size="tiny", **kwargs)
    waves = torch.randn(2, 16000) * 0.1
    backbone.eval()
    with torch.no_grad():
        clean = backbone.hidden_states(waves)[-1]
    handle = attach_spec_augment(backbone, SpecAugment(time_mask_param=50, freq_mask_param=60))
    seen = []
    patch_embedding_module(backbone).register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    with torch.no_grad():
        assert torch.equal(backbone.hidden_states(waves)[-1], clean)  # eval: no mask
        assert not (seen[-1] == 0).all(dim=-1).any()
        backbone.train()
        torch.manual_seed(0)
        backbone.hidden_states(waves)
    image = seen[-1]  # (B, 1, frames, mel_bins) after the SpecAugment hook
    assert image.dim() == 4 and image.shape[-1] == 128
    assert (image == 0).all(dim=-1).any()  # some frame masked over every mel bin
    handle.remove()
