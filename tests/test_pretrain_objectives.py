"""Issue 14: the pretraining objectives (BEATs iteration 1, EAT, wav2vec 2.0) on tiny inputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from asd_utils.backbones import load_backbone
from asd_utils.pretrain.beats import BEATsMaskedPredictor, RandomProjectionTokenizer, patchify
from asd_utils.pretrain.eat import (
    EATPretrainConfig,
    EATPretrainer,
    ema_decay_at,
    ema_step,
    layer_targets,
    teacher_layer_results,
)
from asd_utils.pretrain.masking import inverse_block_mask, random_mask
from asd_utils.training.ema import EMA


# --- masks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.5, 0.75])
def test_random_mask_masks_exactly_the_ratio(ratio):
    mask = random_mask(6, 64, ratio, torch.Generator().manual_seed(0))
    assert mask.dtype == torch.bool and mask.shape == (6, 64)
    assert (mask.sum(1) == int(round(ratio * 64))).all()
    assert not torch.equal(mask[0], mask[1])  # rows draw their own positions


def _kept_neighbours(mask: torch.Tensor, grid) -> float:
    """Mean number of kept 4-neighbours of a kept patch."""
    keep = (~mask).reshape(-1, *grid).float()
    pad = torch.nn.functional.pad(keep, (1, 1, 1, 1))
    neighbours = pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]
    return float((neighbours * keep).sum() / keep.sum())


def test_inverse_block_mask_ratio_and_blocks():
    grid, prob = (16, 8), 0.8
    gen = torch.Generator().manual_seed(0)
    mask = inverse_block_mask(20, grid, prob, 5, gen)
    assert mask.shape == (20, 128)
    assert (mask.sum(1) == int(round(prob * 128))).all()  # exactly mask_prob of the grid
    # kept patches come in blocks: far more kept neighbours than a random mask of the same ratio
    random = random_mask(20, 128, prob, torch.Generator().manual_seed(0))
    assert _kept_neighbours(mask, grid) > 2.0 > 2 * _kept_neighbours(random, grid)


# --- BEATs tokenizer and objective --------------------------------------------------------------
def test_patchify_matches_beats_token_order():
    fbank = torch.randn(2, 48, 128)
    patches = patchify(fbank)
    assert patches.shape == (2, 3 * 8, 256)
    t, f = 2, 5  # token t * 8 + f is the patch of frames 32..47, mel bins 80..95
    assert torch.equal(patches[1, t * 8 + f], fbank[1, 32:48, 80:96].reshape(-1))


def test_tokenizer_is_frozen_and_deterministic_from_its_seed():
    fbank = torch.randn(3, 64, 128)
    a = RandomProjectionTokenizer(codebook_size=32, code_dim=8, seed=3).fit(fbank)
    b = RandomProjectionTokenizer(codebook_size=32, code_dim=8, seed=3).fit(fbank)
    c = RandomProjectionTokenizer(codebook_size=32, code_dim=8, seed=4).fit(fbank)
    assert list(a.parameters()) == []  # buffers only: nothing an optimiser could update
    assert torch.equal(a.projection, b.projection) and torch.equal(a.codebook, b.codebook)
    assert not torch.equal(a.projection, c.projection)
    codes = a(fbank)
    assert torch.equal(codes, b(fbank)) and codes.shape == (3, 32)
    # nearest code by Euclidean distance between unit vectors, computed by hand
    z = torch.nn.functional.normalize(((patchify(fbank) - a.mean) / a.std) @ a.projection, dim=-1)
    dist = ((z.unsqueeze(-2) - a.codebook) ** 2).sum(-1)
    assert torch.equal(codes, dist.argmin(-1))
    assert torch.allclose(a.codebook.norm(dim=-1), torch.ones(32))


def test_beats_step_lowers_the_loss_and_leaves_the_tokenizer_alone():
    torch.manual_seed(0)
    model = load_backbone("beats", size="tiny", seed=0)
    fbank = torch.randn(4, 64, 128)
    tokenizer = RandomProjectionTokenizer(codebook_size=16, code_dim=8, seed=0).fit(fbank)
    frozen = {k: v.clone() for k, v in tokenizer.state_dict().items()}
    codes = tokenizer(fbank)
    mask = random_mask(4, codes.shape[1], 0.75, torch.Generator().manual_seed(0))
    learner = BEATsMaskedPredictor(model, 16)
    learner.eval()  # no dropout: the same batch gives the same loss
    opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
    before, _ = learner.loss(fbank, mask, codes)
    manual = torch.nn.functional.cross_entropy(learner(fbank, mask)[mask], codes[mask])
    assert torch.allclose(before, manual)
    opt.zero_grad()
    before.backward()
    opt.step()
    after, acc = learner.loss(fbank, mask, codes)
    assert float(after.detach()) < float(before.detach())
    # the accuracy is the share of masked patches whose most likely code is their own
    with torch.no_grad():
        predicted = learner(fbank, mask)[mask].argmax(-1)
    assert acc == pytest.approx(float((predicted == codes[mask]).double().mean()), abs=1e-12)
    assert acc * int(mask.sum()) == pytest.approx(round(acc * int(mask.sum())), abs=1e-6)
    assert all(torch.equal(frozen[k], v) for k, v in tokenizer.state_dict().items())
    assert torch.equal(tokenizer(fbank), codes)


# --- EAT objective --------------------------------------------------------------------------------
def _tiny_eat():
    return load_backbone("eat", size="tiny", seed=0, target_length=64)


def test_eat_targets_average_instance_normed_top_layers():
    layers = [torch.randn(2, 8, 16) * (i + 1) + i for i in range(3)]
    y = layer_targets(layers, 2)
    inorm = [(r - r.mean(1, keepdim=True)) / torch.sqrt(r.var(1, unbiased=False, keepdim=True) + 1e-5)
             for r in layers[-2:]]
    avg = (inorm[0] + inorm[1]) / 2
    expected = (avg - avg.mean(-1, keepdim=True)) / torch.sqrt(avg.var(-1, unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(y, expected, atol=1e-5)


def test_eat_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    student = _tiny_eat()
    cfg = EATPretrainConfig(decoder_dim=32, clone_batch=2, mask_prob=0.75, mask_length=2)
    learner = EATPretrainer(student, cfg)
    teacher = copy.deepcopy(student)
    image = torch.randn(2, 1, 64, 128)
    grid = (4, 8)
    with torch.no_grad():
        targets = layer_targets(teacher_layer_results(teacher, image), 2)
    assert targets.shape == (2, 32, 64)
    views = image.repeat_interleave(2, 0)
    targets = targets.repeat_interleave(2, 0)
    mask = inverse_block_mask(4, grid, 0.75, 2, torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(learner.parameters(), lr=1e-3)

    def loss():
        torch.manual_seed(1)  # the same decoder noise each time
        frame, utter = learner.losses(views, targets, mask, grid)
        return frame + utter

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    assert float(loss().detach()) < float(before.detach())


def test_eat_student_sees_only_kept_patches():
    student = _tiny_eat()
    learner = EATPretrainer(student, EATPretrainConfig(decoder_dim=32))
    image = torch.randn(1, 1, 64, 128)
    mask = inverse_block_mask(1, (4, 8), 0.75, 2, torch.Generator().manual_seed(0))
    cls_a, kept_a = learner.encode_visible(image, mask)
    assert kept_a.shape == (1, 8, 64)
    # changing a masked patch's pixels changes nothing the student sees
    masked_patch = int(torch.nonzero(mask[0])[0])
    t, f = divmod(masked_patch, 8)
    other = image.clone()
    other[0, 0, t * 16 : (t + 1) * 16, f * 16 : (f + 1) * 16] += 5.0
    cls_b, kept_b = learner.encode_visible(other, mask)
    assert torch.equal(cls_a, cls_b) and torch.equal(kept_a, kept_b)


def test_ema_teacher_follows_its_momentum():
    student = _tiny_eat()
    teacher = copy.deepcopy(student)
    ema = EMA(student, decay=0.9)
    old = {k: v.clone() for k, v in teacher.state_dict().items()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    ema_step(ema, student, teacher, 0.75)
    new_student = student.state_dict()
    for key, value in teacher.state_dict().items():
        if value.dtype.is_floating_point:
            assert torch.allclose(value, 0.75 * old[key] + 0.25 * new_student[key], atol=1e-6), key
    assert ema_decay_at(0, 11, 0.9, 0.99) == 0.9
    assert ema_decay_at(10, 11, 0.9, 0.99) == 0.99
    assert abs(ema_decay_at(5, 11, 0.9, 0.99) - 0.945) < 1e-12


# --- wav2vec 2.0 ------------------------------------------------------------------------------------
def test_wav2vec2_contrastive_step_lowers_the_loss():
    from asd_utils.pretrain.speech import Wav2Vec2PretrainConfig, _normalise, _step_inputs, wav2vec2_pretraining_model

    cfg = Wav2Vec2PretrainConfig(num_negatives=5, num_codevectors_per_group=16)
    model, standin = wav2vec2_pretraining_model(cfg, seed=0)
    # the encoder starts as the untrained stand-in of the same seed
    assert all(torch.equal(a, b) for a, b in zip(model.wav2vec2.state_dict().values(),
                                                  standin.model.state_dict().values()))
    waves = _normalise(torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)))
    mask, negatives = _step_inputs(model, waves, np.random.default_rng(0))
    assert mask.any()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss():
        torch.manual_seed(0)  # the same Gumbel noise each time
        return model(waves, mask_time_indices=mask, sampled_negative_indices=negatives).loss

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    assert float(loss().detach()) < float(before.detach())


def test_beats_pretraining_moves_every_weight_and_lowers_the_training_loss():
    """Twelve steps of the real loop on a fixed synthetic fbank set: every encoder tensor moves
    away from the untrained stand-in it starts from, and the training loss of the last four steps
    is well below that of the first four (it starts near ln(16) = 2.77 for 16 codes)."""
    from asd_utils.pretrain.beats import BEATsPretrainConfig, pretrain_beats

    features = torch.randn(12, 64, 128, generator=torch.Generator().manual_seed(0))
    cfg = BEATsPretrainConfig(size="tiny", steps=12, batch_size=4, crop_frames=64, codebook_size=16, code_dim=8,
                              eval_every=5, tokenizer_fit_clips=8, warmup_steps=1, holdout_fraction=0.25, lr=3e-3)
    initial = load_backbone("beats", size="tiny", seed=0)
    model, history = pretrain_beats(features, cfg, seed=0, progress=False, initial=initial)
    assert history.steps == list(range(12)) and history.eval_steps == [0, 5, 10, 11]
    assert np.mean(history.loss[:4]) == pytest.approx(np.log(16), abs=0.15)
    assert np.mean(history.loss[-4:]) < np.mean(history.loss[:4]) - 0.1
    unchanged = [name for (name, before), after in zip(initial.named_parameters(), model.parameters())
                 if torch.equal(before, after)]
    assert unchanged == []
