"""SE-ResNet18 log-mel branch beside the |FFT| branch: the embedding model of report 002 (NIVIC).

The report trains "a SeResNet18-based feature extractor" with AdaCos and Wilkinghoff's
self-supervision (mixup, StatEx, FeatEx; "Self-supervised learning for anomalous sound
detection", ICASSP 2024, public code ``wilkinghoff/ssl4asd``). FeatEx needs two embedding branches,
so the model follows ssl4asd's layout:

- **|FFT| branch** (:class:`asd_utils.models.FFTBranch`): the clip's amplitude spectrum through
  three strided 1-D convolutions with squeeze-excitation and four dense layers, 128-d;
- **spectrogram branch** (:class:`SEResNet18Branch`): log-mel spectrogram (the report: log-mel,
  200-8000 Hz; ssl4asd uses a linear-magnitude STFT), StatEx in training, the temporal mean of every
  mel band removed, BatchNorm per mel band, a 7x7 stride-2 convolution, 3x3/2 max-pooling, four
  stages of two residual basic blocks with squeeze-excitation (16/32/64/128 channels at
  ``width=1``: ResNet18's 2-2-2-2 layout with ssl4asd's channel counts), max over time, flatten,
  BatchNorm, a linear layer to 128-d;
- embedding = ``concat(fft, spectrogram)``, 256-d.

In training mode :class:`SEResNetFFTModel` applies StatEx to the log-mel input and FeatEx to the
branch embeddings (``asd_utils.training.statex``) and returns a *packed* tensor that carries the
plain embedding, the FeatEx embedding and the two per-sample exchange flags, so that
:class:`asd_utils.training.statex.SelfSupervisedHeads` can build the 3C / 9C targets; in eval mode
it returns the ``(B, 256)`` embedding only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asd_utils.features.logmel import mel_power
from asd_utils.models.blocks import SqueezeExcitation
from asd_utils.models.fft_branch import FFTBranch
from asd_utils.training.statex import featex, pack_ssl_outputs, statex

__all__ = ["SEBasicBlock", "SEResNet18Branch", "SEResNetFFTModel", "log_mel_torch"]

STAGE_CHANNELS = (16, 32, 64, 128)  # ssl4asd's residual stages at width 1
BLOCKS_PER_STAGE = 2  # ResNet18


def _channels(base: int, width: float) -> int:
    return max(2, int(round(base * width)))


class SEBasicBlock(nn.Module):
    """Residual basic block with squeeze-excitation on the residual branch.

    ``y = shortcut(x) + SE(conv3x3(relu(bn(conv3x3_stride(relu(bn(x)))))))``; the shortcut is the
    identity, or (channel change / stride) a max-pool of ``stride`` followed by a 1x1 convolution
    (ssl4asd's choice). Input ``(B, C_in, H, W)`` -> ``(B, C_out, ceil(H / s), ceil(W / s))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, se_ratio: int = 16):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.se = SqueezeExcitation(out_channels, ratio=se_ratio, dims=2)
        self.stride = int(stride)
        self.project = None
        if stride != 1 or in_channels != out_channels:
            self.project = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv1(F.relu(self.bn1(x)))
        residual = self.se(self.conv2(F.relu(self.bn2(residual))))
        shortcut = x
        if self.stride != 1:
            shortcut = F.max_pool2d(shortcut, self.stride, ceil_mode=True)
        if self.project is not None:
            shortcut = self.project(shortcut)
        return shortcut[..., : residual.shape[-2], : residual.shape[-1]] + residual


class SEResNet18Branch(nn.Module):
    """``log-mel (B, n_mels, frames) -> (B, out_dim)``: the SE-ResNet18 spectrogram branch.

    Args:
        n_mels: mel bands of the input.
        out_dim: embedding size (128 in ssl4asd).
        width: multiplier of the stage channels (16, 32, 64, 128).
        se_ratio: squeeze-excitation reduction ratio (16).

    The input's temporal mean is removed per mel band ("CMN", ssl4asd; ``remove_temporal_mean``),
    then a BatchNorm per mel band; a
    7x7 stride-2 stem (``16 * width`` channels), 3x3 stride-2 max-pooling, 4 stages x 2
    :class:`SEBasicBlock` (stride 2 at the first block of stages 2-4), max over the time axis,
    flatten (channels x remaining mel bins), BatchNorm, ``Linear(out_dim, no bias)``.
    ``final_bn_relu=True`` adds a BatchNorm + ReLU between the last block and the max-pooling
    (not in ssl4asd, whose last residual sum is pooled as it is).
    """

    def __init__(self, n_mels: int, out_dim: int = 128, *, width: float = 1.0, se_ratio: int = 16,
                 remove_temporal_mean: bool = True, final_bn_relu: bool = False):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        self.n_mels = int(n_mels)
        self.remove_temporal_mean = bool(remove_temporal_mean)
        chans = [_channels(c, width) for c in STAGE_CHANNELS]
        self.input_norm = nn.BatchNorm1d(self.n_mels)
        self.stem = nn.Sequential(nn.Conv2d(1, chans[0], 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm2d(chans[0]), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
        blocks, in_ch = [], chans[0]
        for stage, out_ch in enumerate(chans):
            for b in range(BLOCKS_PER_STAGE):
                stride = 2 if (stage > 0 and b == 0) else 1
                blocks.append(SEBasicBlock(in_ch, out_ch, stride=stride, se_ratio=se_ratio))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        # ssl4asd max-pools the last residual sum directly; final_bn_relu adds a BatchNorm + ReLU first
        self.final_norm = nn.BatchNorm2d(in_ch) if final_bn_relu else None
        freq = self.n_mels
        for _ in range(2):  # stem conv + max-pool
            freq = (freq + 1) // 2
        for _ in range(3):  # strided stages
            freq = (freq + 1) // 2
        self.flat_dim = in_ch * freq
        self.head_norm = nn.BatchNorm1d(self.flat_dim)
        self.head = nn.Linear(self.flat_dim, int(out_dim), bias=False)
        self.out_dim = int(out_dim)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        if logmel.dim() != 3 or logmel.shape[1] != self.n_mels:
            raise ValueError(f"log-mel must be (batch, {self.n_mels}, frames), got {tuple(logmel.shape)}")
        x = logmel - logmel.mean(dim=2, keepdim=True) if self.remove_temporal_mean else logmel
        x = self.input_norm(x).unsqueeze(1)  # (B, 1, F, T)
        x = self.blocks(self.stem(x))
        if self.final_norm is not None:
            x = F.relu(self.final_norm(x))
        x = x.amax(dim=3)  # max over time -> (B, C, F')
        return self.head(self.head_norm(x.flatten(1)))


def log_mel_torch(waves: torch.Tensor, *, sample_rate: int, n_fft: int, hop_length: int, n_mels: int,
                  fmin: float, fmax: float, eps: float = 1e-8) -> torch.Tensor:
    """``waves (B, T) float32 -> (B, n_mels, frames)`` natural-log mel power, computed in float32
    outside autocast (``asd_utils.features.logmel.mel_power``: Hann window, centred frames, Slaney mel
    filters between ``fmin`` and ``fmax`` Hz)."""

    with torch.autocast(device_type=waves.device.type, enabled=False):
        mel = mel_power(waves.float(), sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                        fmin=fmin, fmax=fmax)
        return torch.log(mel + eps)


class SEResNetFFTModel(nn.Module):
    """``waves (B, n_samples) float32 -> (B, 2 * emb_dim)``: |FFT| branch + SE-ResNet18 log-mel branch.

    Args:
        n_samples: input length (the |FFT| branch's flattened size depends on it).
        sample_rate, n_fft, hop_length, n_mels, fmin, fmax: the log-mel front end (Hz, samples).
        emb_dim: size of each branch's embedding (128); the model's embedding is ``2 * emb_dim``.
        width: channel multiplier of both branches.
        se_ratio: squeeze-excitation reduction ratio.
        statex_prob, featex_prob: per-sample probabilities of StatEx and FeatEx in training mode
            (0 switches them off; ssl4asd: 0.5 each).
        remove_temporal_mean: subtract each clip's mean over time from every mel band before the
            spectrogram branch's BatchNorm (ssl4asd's normalisation; it deletes the clip's
            stationary spectral envelope).
        final_bn_relu: BatchNorm + ReLU before the spectrogram branch's pooling (off: ssl4asd).

    Training mode returns the packed tensor of :func:`asd_utils.training.statex.pack_ssl_outputs`,
    ``(B, 4 * emb_dim + 2)``; eval mode the embedding ``concat(fft, spectrogram)``. Exchange
    partners are the batch-reversed samples; randomness comes from torch's global generator.
    """

    def __init__(self, n_samples: int, *, sample_rate: int = 16000, n_fft: int = 1024, hop_length: int = 512,
                 n_mels: int = 128, fmin: float = 200.0, fmax: float = 8000.0, emb_dim: int = 128,
                 width: float = 1.0, se_ratio: int = 16, statex_prob: float = 0.5, featex_prob: float = 0.5,
                 remove_temporal_mean: bool = True, final_bn_relu: bool = False):
        super().__init__()
        for name, p in (("statex_prob", statex_prob), ("featex_prob", featex_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        self.n_samples = int(n_samples)
        self.front_end = {"sample_rate": int(sample_rate), "n_fft": int(n_fft), "hop_length": int(hop_length),
                          "n_mels": int(n_mels), "fmin": float(fmin), "fmax": float(fmax)}
        self.fft_branch = FFTBranch(self.n_samples, int(emb_dim), width=width)
        self.spec_branch = SEResNet18Branch(int(n_mels), int(emb_dim), width=width, se_ratio=se_ratio,
                                            remove_temporal_mean=remove_temporal_mean, final_bn_relu=final_bn_relu)
        self.emb_dim = int(emb_dim)
        self.dim = 2 * self.emb_dim
        self.statex_prob = float(statex_prob)
        self.featex_prob = float(featex_prob)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def log_mel(self, waves: torch.Tensor) -> torch.Tensor:
        """``(B, n_samples) -> (B, n_mels, frames)`` log-mel input of the spectrogram branch."""
        return log_mel_torch(waves, **self.front_end)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:

        if waves.dim() != 2 or waves.shape[1] != self.n_samples:
            raise ValueError(f"waves must be (batch, {self.n_samples}), got {tuple(waves.shape)}")
        fft_emb = self.fft_branch(waves)
        spec = self.log_mel(waves)
        if not self.training:
            return torch.cat([fft_emb, self.spec_branch(spec)], dim=1)
        spec, statex_mask = statex(spec, self.statex_prob)
        spec_emb = self.spec_branch(spec)
        swapped, featex_mask = featex(spec_emb, self.featex_prob)
        return pack_ssl_outputs(torch.cat([fft_emb, spec_emb], dim=1), torch.cat([fft_emb, swapped], dim=1),
                                statex_mask, featex_mask)
