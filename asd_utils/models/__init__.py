"""Embedding models trained from scratch (backbones with pretrained weights live in ``asd_utils.backbones``)."""

from asd_utils.models.blocks import SameConv1d, SqueezeExcitation
from asd_utils.models.fft_branch import FFTBranch
from asd_utils.models.fusion import FusionModel, PretrainedBranch
from asd_utils.models.seresnet import SEBasicBlock, SEResNet18Branch, SEResNetFFTModel
from asd_utils.models.three_subnet import (
    BasicBlock,
    Conv1dBranch,
    StftResNetBranch,
    ThreeSubNetwork,
    branch_sizes,
)

__all__ = [
    "BasicBlock",
    "Conv1dBranch",
    "FFTBranch",
    "FusionModel",
    "PretrainedBranch",
    "SEBasicBlock",
    "SEResNet18Branch",
    "SEResNetFFTModel",
    "SameConv1d",
    "SqueezeExcitation",
    "StftResNetBranch",
    "ThreeSubNetwork",
    "branch_sizes",
]
