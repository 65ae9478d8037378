import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from asd_utils.training import CHECKPOINT_NAME, Trainer, build_optimizer, extract_embeddings, seed_everything
from asd_utils.training.losses import AdaCos, SubClusterAdaCos

N_CLASSES = 3


def tiny_model():
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))


def loader(seed=1):
    data = torch.Generator().manual_seed(123)
    x = torch.randn(44, 8, generator=data)
    y = torch.randint(0, N_CLASSES, (44,), generator=data)
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, drop_last=False,
                      generator=torch.Generator().manual_seed(seed))


def make_trainer(checkpoint_dir=None, seed=0):
    seed_everything(seed)
    model = tiny_model()
    loss = SubClusterAdaCos(N_CLASSES, 2, 4, trainable_centres=True)
    return Trainer(model, loss, {"name": "adamw", "lr": 1e-2, "weight_decay": 1e-3},
                   {"name": "cosine", "warmup_steps": 2}, epochs=4, grad_accum_steps=2, max_grad_norm=1.0,
                   ema_decay=0.9, mixup_alpha=0.5, mixup_prob=0.5, seed=11, checkpoint_dir=checkpoint_dir,
                   progress=False)


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_reproduces_uninterrupted_run_exactly(tmp_path):
    full = make_trainer()
    history = full.fit(loader())
    assert len(history) == 4 and full.state.step == 4 * 3  # ceil(6 batches / 2) steps per epoch

    first = make_trainer(tmp_path)
    first.fit(loader(), until_epoch=2)
    assert (tmp_path / CHECKPOINT_NAME).exists() and first.state.epoch == 2
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)  # loadable without pickle
    assert ckpt["train_state"]["epoch"] == 2 and ckpt["train_state"]["step"] == 6

    seed_everything(999)  # a fresh "process": other global RNG state, other initial weights
    torch.rand(5)
    second = make_trainer(tmp_path, seed=555)
    second.fit(loader(), resume=True)
    assert second.state.epoch == 4 and second.state.step == 12
    assert_same_state(full.model.state_dict(), second.model.state_dict())
    assert_same_state(full.loss_fn.state_dict(), second.loss_fn.state_dict())
    assert_same_state(full.ema.shadow, second.ema.shadow)
    assert [h["loss"] for h in full.state.history] == [h["loss"] for h in second.state.history]
    assert full.optimizer.param_groups[0]["lr"] == second.optimizer.param_groups[0]["lr"]


def test_training_reduces_loss_and_schedule_spans_epochs():
    seed_everything(0)
    model = tiny_model()
    trainer = Trainer(model, AdaCos(N_CLASSES, 4), {"name": "adam", "lr": 3e-2}, {"name": "constant"},
                      epochs=6, progress=False, amp=True)
    history = trainer.fit(loader())
    assert history[-1]["loss"] < history[0]["loss"]
    assert not trainer.amp  # AMP is a no-op on CPU
    assert trainer.scheduler is not None and trainer.steps_per_epoch == 6
    assert {"epoch", "loss", "clips_per_s", "lr", "batches"} <= history[0].keys()


def test_resume_without_checkpoint_starts_fresh_and_errors(tmp_path):
    trainer = make_trainer(tmp_path / "new")
    trainer.fit(loader(), resume=True, until_epoch=1)
    assert trainer.state.epoch == 1
    with pytest.raises(ValueError, match="checkpoint_dir"):
        make_trainer().fit(loader(), resume=True)
    bad = tmp_path / "bad.pt"
    torch.save({"format": "other"}, bad)
    with pytest.raises(ValueError, match="not an asd_utils trainer checkpoint"):
        trainer.load_checkpoint(bad)


def test_forward_fn_optimizer_names_and_validation():
    seed_everything(0)
    model = tiny_model()
    calls = []

    def forward(m, x):
        calls.append(x.shape[0])
        return m(x)

    Trainer(model, AdaCos(N_CLASSES, 4), epochs=1, forward_fn=forward, progress=False).fit(loader())
    assert sum(calls) == 44
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(model.parameters(), "sgd")
    with pytest.raises(ValueError, match="epochs"):
        Trainer(model, AdaCos(N_CLASSES, 4), epochs=0)


def test_extract_embeddings_from_array_and_loader_restores_mode():
    seed_everything(0)
    model = tiny_model()
    model.train()
    x = torch.randn(10, 8)
    a = extract_embeddings(model, x.numpy(), batch_size=3)
    b = extract_embeddings(model, DataLoader(TensorDataset(x, torch.zeros(10)), batch_size=4))
    assert a.shape == (10, 4) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert model.training
    trainer = Trainer(model, AdaCos(N_CLASSES, 4), epochs=1, ema_decay=0.5, progress=False)
    trainer.fit(loader())
    assert trainer.embed(x, use_ema=True).shape == (10, 4)
    with pytest.raises(ValueError, match="no inputs"):
        extract_embeddings(model, [])


@pytest.mark.parametrize("name, extra", [("adam", {}), ("adamw", {"weight_decay": 1e-2, "betas": (0.9, 0.98)})])
def test_multi_tensor_update_is_default_and_bit_identical_to_the_per_tensor_loop(name, extra):
    """build_optimizer defaults to torch's multi-tensor (foreach) update for speed; the trained
    parameters must equal those of the per-tensor loop bit for bit, so no cached model or score
    changes with it."""
    def train(**kwargs):
        seed_everything(0)
        model = tiny_model()
        initial = model[0].weight.detach().clone()
        optimizer = build_optimizer(model.parameters(), name, lr=1e-2, **extra, **kwargs)
        data = torch.Generator().manual_seed(5)
        for _ in range(30):
            x = torch.randn(16, 8, generator=data)
            loss = (model(x) ** 2).mean() + model(x).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        assert not torch.equal(model[0].weight, initial)  # it trained
        return optimizer, model.state_dict()

    default_optimizer, default_state = train()
    assert default_optimizer.defaults["foreach"] is True
    loop_optimizer, loop_state = train(foreach=False)
    assert loop_optimizer.defaults["foreach"] is False
    assert_same_state(default_state, loop_state)
    fused = build_optimizer(tiny_model().parameters(), name, lr=1e-2, fused=True)  # no foreach forced on
    assert fused.defaults["fused"] is True and not fused.defaults["foreach"]
