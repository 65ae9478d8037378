import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from asd_utils.training import EMA


def test_ema_update_copy_and_state_dict():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.fill_(3.0)
    model(torch.randn(4, 2))  # changes BN running stats and num_batches_tracked
    ema.update(model)
    assert torch.allclose(ema.shadow["0.weight"], torch.full((2, 2), 2.0))
    assert ema.shadow["1.num_batches_tracked"].item() == 1
    ema.update(model)
    assert torch.allclose(ema.shadow["0.weight"], torch.full((2, 2), 2.5))
    clone = ema.averaged_model(model)
    assert torch.allclose(clone[0].weight, torch.full((2, 2), 2.5))
    assert torch.allclose(model[0].weight, torch.full((2, 2), 3.0))
    other = EMA(model, decay=0.9)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.5 and other.num_updates == 2
    other.copy_to(model)
    assert torch.allclose(model[0].weight, torch.full((2, 2), 2.5))


def test_ema_warmup_and_validation():
    model = nn.Linear(1, 1)
    ema = EMA(model, decay=0.999, warmup=True)
    assert ema.current_decay() == pytest.approx(0.1)
    with pytest.raises(ValueError):
        EMA(model, decay=1.5)


def test_ema_on_averaged_model_gives_the_hand_written_ema_weights():
    """torch's AveragedModel + get_ema_multi_avg_fn gives the weights of the former hand-written EMA.

    Weight 0 at creation, then 1, 2, 3, 4, 5 before each update; warm-up decays
    min(0.9, (1 + n) / (10 + n)) = 0.1, 2/11, 0.25, 4/13, 5/14. Expected values: the float32
    outputs of the hand-written EMA, recorded before the change.
    """
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, 0.9, warmup=True)
    seen = []
    for value in (1.0, 2.0, 3.0, 4.0, 5.0):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        seen.append(ema.shadow["weight"].item())
    before = [0.8999999761581421, 1.7999999523162842, 2.700000047683716, 3.6000001430511475, 4.5]
    assert seen == pytest.approx(before, rel=1e-6, abs=0)
    by_hand, average = [], 0.0
    for n, value in enumerate((1.0, 2.0, 3.0, 4.0, 5.0)):
        decay = min(0.9, (1 + n) / (10 + n))
        average = decay * average + (1 - decay) * value
        by_hand.append(average)
    assert seen == pytest.approx(by_hand, rel=1e-6)
    assert ema.num_updates == 5 and ema.current_decay() == pytest.approx(6 / 15)
    # a checkpoint round trip keeps the count, hence the warm-up decay
    other = EMA(model, 0.9, warmup=True)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 5 and other.shadow["weight"].item() == seen[-1]


def test_ema_starts_from_the_weights_at_creation():
    """The AveragedModel is primed with the model's weights when the EMA is made (no update yet)."""
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(model, 0.5)
    assert isinstance(ema.averaged, AveragedModel) and ema.num_updates == 0
    assert torch.equal(ema.shadow["0.weight"], model[0].weight.detach())
