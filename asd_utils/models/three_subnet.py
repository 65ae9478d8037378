"""The three-subnetwork embedding model of the IOA-CAS DCASE 2024 Task 2 report (Wu et al.).

The report (Wu, Wen, Yan and Cheng, "Anomalous sound detection with three-subnetworks and
pre-trained models", DCASE 2024 Challenge Task 2 technical report, section 2) describes three branches whose
outputs are concatenated into a 512-d embedding trained with sub-cluster AdaCos:

- raw waveform: three 1-D convolutions, Flatten, four fully connected layers with batch norm,
  128-d output;
- amplitude spectrum: the same structure, 128-d output;
- STFT spectrogram (window 1024, hop 512): a modified ResNet of four basic blocks with batch norm,
  Flatten, 256-d output.

It leaves kernel sizes, strides and widths open and says it redesigns Wilkinghoff's model
("Self-supervised learning for anomalous sound detection", ICASSP 2024, public code
``wilkinghoff/ssl4asd``). Where the report is silent we take that model's choices:

- 1-D branches: convolutions with 128 channels, kernel/stride 256/64, 64/32, 16/4, "same"-style
  padding ``kernel // 2``, each followed by batch norm and ReLU (the report's batch norm; the
  squeeze-and-excitation blocks of Wilkinghoff's model are not mentioned by the report and are
  left out); then Flatten and four linear layers ``flat -> 128 -> 128 -> 128 -> out``, the first
  three with batch norm + ReLU, the last linear (the embedding).
- amplitude spectrum: ``|rfft(x)|`` of the whole clip, first ``T // 2`` bins, linear magnitude
  (as in Wilkinghoff's model); computed in float32 outside autocast.
- STFT branch: magnitude STFT (Hann window 1024, hop 512, no centring: Wilkinghoff's
  ``pad_end=False``), ``log(|X| + 1e-5)`` (our reading: log-magnitude), batch norm over the 513
  frequency bins (the report's "batch normalization applied to standardize the data
  distribution"); stem ``Conv2d(1, 16, 7, stride 2)`` + BN + ReLU + ``MaxPool(3, stride 2)``; four
  basic residual blocks (two 3x3 convolutions with BN, ReLU, identity or 1x1-conv shortcut) with
  16, 32, 64, 128 channels and strides 1, 2, 2, 2 (one block per stage, the report's "four basic
  blocks"; Wilkinghoff has two per stage); max pooling over the whole time axis (his
  ``MaxPooling2D`` over time), Flatten of channels x frequency, batch norm, linear to 256.
  Wilkinghoff's model also subtracts each clip's mean over time from every frequency bin before
  the batch norm; the report does not name that step, and it deletes the clip's stationary
  spectral envelope (a constant per-bin offset), where most of the anomaly information of the
  synthetic machines lies (papers/004_ioa_cas.md, "Why the default run lost to the autoencoder").
  It is off by default and kept as ``stft_remove_temporal_mean=True`` for comparison.

``width`` multiplies every channel count and the hidden size of the linear layers (1.0 = the
paper model; e.g. 0.25 for CPU runs); the embedding sizes stay 128 + 128 + 256 unless
``embedding_dims`` says otherwise. The clip length ``sample_rate * clip_seconds`` is fixed at
construction (the flattened sizes depend on it): 12 s in the paper. Longer (whole) clips are
used through windows of that length: random ones for training, the mean over windows covering the
clip for embeddings (``asd_utils.training.crops``, ``asd_utils.methods.ioa.embed_clips``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asd_utils.training.losses import SubClusterAdaCos

CONV1D_LAYERS = ((256, 64), (64, 32), (16, 4))  # (kernel, stride), Wilkinghoff ICASSP 2024
RESNET_CHANNELS = (16, 32, 64, 128)
RESNET_STRIDES = (1, 2, 2, 2)
LOG_OFFSET = 1e-5


def _scaled(channels: int, width: float) -> int:
    return max(2, int(round(channels * width)))


def _conv_len(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class Conv1dBranch(nn.Module):
    """Three strided 1-D convolutions (BN + ReLU), Flatten, four linear layers -> ``out_dim``.

    Input ``(B, length)``; output ``(B, out_dim)``.
    """

    def __init__(self, length: int, out_dim: int = 128, channels: int = 128, hidden: int = 128):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, n = 1, length
        for kernel, stride in CONV1D_LAYERS:
            layers += [nn.Conv1d(in_ch, channels, kernel, stride=stride, padding=kernel // 2, bias=False),
                       nn.BatchNorm1d(channels), nn.ReLU(inplace=True)]
            in_ch, n = channels, _conv_len(n, kernel, stride, kernel // 2)
        self.convs = nn.Sequential(*layers)
        self.length = int(length)
        self.flat_dim = channels * n
        fc: list[nn.Module] = []
        dims = [self.flat_dim, hidden, hidden, hidden]
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            fc += [nn.Linear(d_in, d_out, bias=False), nn.BatchNorm1d(d_out), nn.ReLU(inplace=True)]
        fc.append(nn.Linear(hidden, out_dim))
        self.fc = nn.Sequential(*fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x.unsqueeze(1)).flatten(1))


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN plus shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x), inplace=True)


class StftResNetBranch(nn.Module):
    """Log-magnitude STFT -> normalisation -> stem -> four basic blocks -> time max-pool -> linear.

    Input ``(B, samples)``; output ``(B, out_dim)``.
    """

    def __init__(self, n_samples: int, out_dim: int = 256, width: float = 1.0, n_fft: int = 1024,
                 hop_length: int = 512, remove_temporal_mean: bool = False):
        super().__init__()
        if n_samples < n_fft:
            raise ValueError(f"clip of {n_samples} samples is shorter than the STFT window {n_fft}")
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.remove_temporal_mean = bool(remove_temporal_mean)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        n_freq = self.n_fft // 2 + 1
        self.freq_norm = nn.BatchNorm1d(n_freq)
        channels = [_scaled(c, width) for c in RESNET_CHANNELS]
        self.stem = nn.Sequential(nn.Conv2d(1, channels[0], 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        blocks, in_ch = [], channels[0]
        for out_ch, stride in zip(channels, RESNET_STRIDES):
            blocks.append(BasicBlock(in_ch, out_ch, stride))
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        f = _conv_len(_conv_len(n_freq, 7, 2, 3), 3, 2, 1)
        for stride in RESNET_STRIDES:
            f = _conv_len(f, 3, stride, 1)
        self.flat_dim = in_ch * f
        self.head = nn.Sequential(nn.BatchNorm1d(self.flat_dim), nn.Linear(self.flat_dim, out_dim))

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, samples)`` -> ``(B, n_fft // 2 + 1, frames)`` log-magnitude STFT (float32)."""
        spec = torch.stft(x.float(), self.n_fft, self.hop_length, window=self.window, center=False,
                          return_complex=True)
        return torch.log(spec.abs() + LOG_OFFSET)

    def normalise(self, spec: torch.Tensor) -> torch.Tensor:
        """``(B, n_freq, frames)`` log-magnitude -> the same shape, batch-normalised per frequency
        bin (after removing each clip's mean over time when ``remove_temporal_mean``)."""
        if self.remove_temporal_mean:
            spec = spec - spec.mean(dim=2, keepdim=True)
        return self.freq_norm(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = self.normalise(self.spectrogram(x))
        y = self.blocks(self.stem(spec.unsqueeze(1)))  # (B, C, F', T')
        y = y.amax(dim=3).flatten(1)
        return self.head(y)


class ThreeSubNetwork(nn.Module):
    """Waveform + amplitude-spectrum + STFT-ResNet branches, concatenated to one embedding.

    Args:
        n_classes: number of auxiliary classes (kept for :meth:`default_loss`; the class centres
            live in the loss, not in the model).
        sample_rate: Hz.
        clip_seconds: clip length; inputs must have ``round(sample_rate * clip_seconds)`` samples.
        width: channel / hidden-size multiplier (1.0 = paper model).
        embedding_dims: output sizes of the waveform, spectrum and STFT branches (128, 128, 256).
        n_fft, hop_length: STFT of the third branch (1024, 512 in the report).
        stft_remove_temporal_mean: subtract each clip's mean over time from every STFT bin before
            the batch norm (Wilkinghoff's normalisation; off: the report names batch norm only).

    ``embed(waves (B, samples) float32) -> (B, sum(embedding_dims))``; ``forward`` is ``embed``.
    """

    def __init__(self, n_classes: int, sample_rate: int = 16000, clip_seconds: float = 12.0, *,
                 width: float = 1.0, embedding_dims: tuple[int, int, int] = (128, 128, 256),
                 n_fft: int = 1024, hop_length: int = 512, stft_remove_temporal_mean: bool = False):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        self.n_classes = int(n_classes)
        self.sample_rate = int(sample_rate)
        self.clip_seconds = float(clip_seconds)
        self.n_samples = int(round(sample_rate * clip_seconds))
        self.width = float(width)
        self.embedding_dims = tuple(int(d) for d in embedding_dims)
        self.embedding_dim = sum(self.embedding_dims)
        channels, hidden = _scaled(128, width), _scaled(128, width)
        self.waveform_branch = Conv1dBranch(self.n_samples, self.embedding_dims[0], channels, hidden)
        self.spectrum_branch = Conv1dBranch(self.n_samples // 2, self.embedding_dims[1], channels, hidden)
        self.stft_branch = StftResNetBranch(self.n_samples, self.embedding_dims[2], width, n_fft, hop_length,
                                            remove_temporal_mean=stft_remove_temporal_mean)

    def _check(self, waves: torch.Tensor) -> None:
        if waves.dim() != 2 or waves.shape[1] != self.n_samples:
            raise ValueError(f"waves must be (batch, {self.n_samples}) = {self.clip_seconds} s at "
                             f"{self.sample_rate} Hz, got {tuple(waves.shape)}")

    @staticmethod
    def amplitude_spectrum(waves: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> ``(B, T // 2)`` magnitude of the clip's DFT (first half of the bins), float32."""
        n = waves.shape[1]
        return torch.fft.rfft(waves.float(), dim=1).abs()[:, : n // 2]

    def embed_branches(self, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-branch embeddings: ``waveform (B, 128)``, ``spectrum (B, 128)``, ``stft (B, 256)``."""
        self._check(waves)
        with torch.autocast(device_type=waves.device.type, enabled=False):
            spectrum = self.amplitude_spectrum(waves)
        return {"waveform": self.waveform_branch(waves), "spectrum": self.spectrum_branch(spectrum),
                "stft": self.stft_branch(waves)}

    BRANCHES = ("waveform", "spectrum", "stft")  # order of the branches in the embedding

    def branch_slices(self) -> dict[str, slice]:
        """Columns of each branch in :meth:`embed`'s output (waveform, spectrum, STFT), so that a
        cached clip embedding ``(N, embedding_dim)`` can be scored one branch at a time."""
        bounds = [0, *torch.tensor(self.embedding_dims).cumsum(0).tolist()]
        return {name: slice(bounds[i], bounds[i + 1]) for i, name in enumerate(self.BRANCHES)}

    def embed(self, waves: torch.Tensor) -> torch.Tensor:
        """``waves (B, samples)`` float32 at ``sample_rate`` -> ``(B, embedding_dim)`` embedding."""
        parts = self.embed_branches(waves)
        return torch.cat([parts[name] for name in self.BRANCHES], dim=1)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.embed(waves)

    def default_loss(self, n_subclusters: int = 16, **kwargs) -> nn.Module:
        """The report's loss: :class:`asd_utils.training.losses.SubClusterAdaCos` over this embedding."""

        return SubClusterAdaCos(self.n_classes, n_subclusters, self.embedding_dim, **kwargs)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def branch_sizes(model: ThreeSubNetwork) -> dict[str, int]:
    """Flattened sizes of each branch and the STFT frame count (to size ``width`` / ``clip_seconds``)."""
    stft = model.stft_branch
    return {"waveform_flat": model.waveform_branch.flat_dim, "spectrum_flat": model.spectrum_branch.flat_dim,
            "stft_flat": stft.flat_dim, "frames": 1 + (model.n_samples - stft.n_fft) // stft.hop_length}
