import pytest
import torch
from torch import nn

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
