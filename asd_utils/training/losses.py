"""Angular-margin classification losses for learning ASD embeddings.

Every loss owns its class centres and is called as ``loss(embeddings (B, D), labels) -> scalar``
where ``labels`` is either ``(B,)`` int64 class indices or ``(B, C)`` float soft targets (rows sum
to 1, e.g. from :func:`asd_utils.training.mixup`). ``loss.logits(embeddings) -> (B, C)`` gives the
cosine similarity of each embedding to each class (before any scale or margin), for scoring and
diagnostics. Embeddings and centres are L2-normalised inside; computations run in float32 even
under mixed precision.

- :class:`AdaCos` (Zhang et al., "AdaCos: Adaptively scaling cosine logits for effectively learning
  deep face representations", CVPR 2019).
- :class:`SubClusterAdaCos` (Wilkinghoff, "Sub-cluster AdaCos: Learning representations for
  anomalous sound detection", IJCNN 2021).
- :class:`ArcFace` (Deng et al., "ArcFace: Additive angular margin loss for deep face
  recognition", CVPR 2019).
- :class:`SubCenterArcFace` (Deng et al., "Sub-center ArcFace", ECCV 2020).
- OS-SCL parts (Huang et al., ICASSP 2025; report 003): :class:`SupConLoss` (Khosla et al.,
  NeurIPS 2020), :func:`arcface_margin_logits`, :func:`mixup_cross_entropy`, :func:`os_scl_loss`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-7


def soft_targets(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``(B,)`` int64 class indices or ``(B, C)`` soft targets -> ``(B, C)`` float32 targets."""
    if labels.dim() == 1:
        if labels.dtype.is_floating_point:
            raise ValueError("1-D labels must be integer class indices (int64)")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
            raise ValueError(f"class index out of range [0, {n_classes}): "
                             f"min {int(labels.min())}, max {int(labels.max())}")
        return F.one_hot(labels.long(), n_classes).float()
    if labels.dim() == 2:
        if labels.shape[1] != n_classes:
            raise ValueError(f"soft labels must have {n_classes} columns, got {labels.shape[1]}")
        return labels.float()
    raise ValueError(f"labels must be (B,) int64 or (B, {n_classes}) float, got shape {tuple(labels.shape)}")


def fixed_adacos_scale(n_logits: int) -> float:
    """Zhang et al.'s fixed scale ``s = sqrt(2) * log(n - 1)`` for ``n`` cosine logits.

    For ``n = 2`` the formula gives 0 (no learning signal); ``n - 1`` is floored at 2 then.
    """
    return math.sqrt(2.0) * math.log(max(n_logits - 1, 2))


def _init_centres(n_centres: int, dim: int, trainable: bool) -> nn.Parameter:
    weight = torch.empty(n_centres, dim)
    nn.init.xavier_uniform_(weight)
    return nn.Parameter(weight, requires_grad=trainable)


def _cosines(embeddings: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    if embeddings.dim() != 2 or embeddings.shape[1] != centres.shape[1]:
        raise ValueError(f"embeddings must be (B, {centres.shape[1]}), got {tuple(embeddings.shape)}")
    return F.normalize(embeddings.float(), dim=1) @ F.normalize(centres.float(), dim=1).t()


def _median(values: torch.Tensor) -> torch.Tensor:
    # the mean of the two middle values for an even count (numpy.median), not torch.median's lower one
    return torch.quantile(values, 0.5)


def dynamic_adacos_scale(scale: float | torch.Tensor, cosines: torch.Tensor, non_target: torch.Tensor,
                         target_angles: torch.Tensor) -> torch.Tensor:
    """Zhang et al.'s dynamic scale ``s_new = log(B_avg) / cos(min(pi/4, theta_med))``.

    Args:
        scale: the current scale ``s``.
        cosines: ``(B, M)`` cosine logits.
        non_target: ``(B, M)`` bool, True where a logit counts in ``B_avg``.
        target_angles: ``(B,)`` angle (radians) between each sample and its target.

    ``B_avg = (1 / B) * sum_i sum_{k non-target} exp(s * cos_ik)`` (computed in log space) and
    ``theta_med`` the median (``numpy.median`` convention) of ``target_angles``.
    """
    batch = cosines.shape[0]
    masked = torch.where(non_target, scale * cosines, torch.full_like(cosines, -math.inf))
    log_b_avg = torch.logsumexp(masked.reshape(-1), dim=0) - math.log(batch)
    theta_med = _median(target_angles)
    return log_b_avg / torch.cos(torch.clamp(theta_med, max=math.pi / 4))


class AdaCos(nn.Module):
    """AdaCos: softmax cross-entropy over scaled cosines ``s * cos(theta_ic)``, no margin.

    Args:
        n_classes: number of classes ``C``.
        dim: embedding dimension ``D``.
        scale: initial/fixed scale; None uses ``s = sqrt(2) * log(C - 1)`` (Zhang et al., eq. 13).
        dynamic: update ``s`` on every training-mode forward pass, without gradient, from the batch
            (Zhang et al., eq. 16): ``s <- log(B_avg) / cos(min(pi/4, theta_med))`` with
            ``B_avg = mean_i sum_{k != y_i} exp(s * cos theta_ik)`` and ``theta_med`` the median
            over the batch of the target angle ``theta_{i, y_i}``. The batch's loss then uses the
            updated scale. For soft targets ``y`` (mixup), ``theta_i = sum_c y_ic theta_ic`` and the
            non-target logits are those with ``y_ic = 0``. The scale is a buffer (checkpointed).
        trainable_centres: learn the class centres (AdaCos' default) or keep them fixed at their
            random (Glorot-uniform) initialisation.
        min_scale: the dynamic scale is clamped from below at this value (a negative ``log(B_avg)``
            is possible late in training with few classes; with ``s = 0`` the next update recovers
            ``log(#non-targets) > 0``).
    """

    def __init__(self, n_classes: int, dim: int, scale: float | None = None, dynamic: bool = True, *,
                 trainable_centres: bool = True, min_scale: float = 0.0):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"AdaCos needs at least 2 classes, got {n_classes}")
        self.n_classes = int(n_classes)
        self.dim = int(dim)
        self.dynamic = bool(dynamic)
        self.min_scale = float(min_scale)
        self.centres = _init_centres(self.n_classes, self.dim, trainable_centres)
        initial = fixed_adacos_scale(self.n_classes) if scale is None else float(scale)
        self.register_buffer("scale", torch.tensor(initial, dtype=torch.float32))

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` -> ``(B, C)`` cosine similarity to each class centre."""
        return _cosines(embeddings, self.centres)

    @torch.no_grad()
    def update_scale(self, cosines: torch.Tensor, targets: torch.Tensor) -> None:
        angles = torch.acos(cosines.clamp(-1.0 + _EPS, 1.0 - _EPS))
        new = dynamic_adacos_scale(self.scale, cosines, targets <= 0, (targets * angles).sum(dim=1))
        if torch.isfinite(new):
            self.scale.copy_(new.clamp(min=self.min_scale))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        targets = soft_targets(labels, self.n_classes).to(embeddings.device)
        cosines = self.logits(embeddings)
        if self.dynamic and self.training:
            self.update_scale(cosines.detach(), targets)
        log_probs = F.log_softmax(self.scale * cosines, dim=1)
        return -(targets * log_probs).sum(dim=1).mean()


class SubClusterAdaCos(nn.Module):
    """Sub-cluster AdaCos (Wilkinghoff, IJCNN 2021): AdaCos with ``K`` centres per class.

    Centre ``c * K + k`` is sub-cluster ``k`` of class ``c``. With scaled cosines
    ``z_ck = s * cos(theta_ck)`` over all ``M = C * K`` centres, the class probability is the sum
    over the class's centres of the softmax over all centres,
    ``P(c | x) = sum_k exp(z_ck) / sum_{c', k'} exp(z_c'k')``, and the loss is the cross-entropy
    ``-sum_c y_c log P(c | x)`` (soft mixup targets allowed), averaged over the batch.

    Scale: the initial/fixed value is ``s = sqrt(2) * log(C * K - 1)`` (AdaCos' formula with the
    number of centres, as in Wilkinghoff's public code, ``wilkinghoff/ssl4asd``
    ``subcluster_adacos.py``). The dynamic update (training mode, no gradient) is AdaCos' rule
    ``s <- log(B_avg) / cos(min(pi/4, theta_med))`` where

    - ``b_avg="non_target"`` (default, the AdaCos definition): ``B_avg = mean_i sum exp(z_ik)`` over
      the centres of the classes with zero target weight (``y_ic = 0``);
      ``b_avg="all"`` sums over every centre, which is what the public code does (its non-target
      variant is left commented out);
    - ``theta_med`` is the batch median of ``theta_i = sum_c y_ic * min_k theta_ick``, the angle to
      the closest centre of the target class (label-weighted for mixup targets). Wilkinghoff's
      code instead sums the angles to all ``K`` centres of the target class (times the number of
      mixed classes); we take the closest centre, which keeps ``theta_med`` an angle in
      ``[0, pi]`` so that ``min(pi/4, .)`` has its intended meaning.

    Centres are fixed (not trained) by default, as in Wilkinghoff's systems.

    ``logits(emb)`` returns, per class, the cosine to its closest centre (max over sub-clusters),
    ``(B, C)``; ``centre_cosines(emb)`` gives all ``(B, C * K)`` cosines and
    ``class_probabilities(emb)`` the ``(B, C)`` probabilities ``P(c | x)`` at the current scale.
    """

    def __init__(self, n_classes: int, n_subclusters: int, dim: int, scale: float | None = None,
                 dynamic: bool = True, *, trainable_centres: bool = False, b_avg: str = "non_target",
                 min_scale: float = 0.0):
        super().__init__()
        if n_classes < 1 or n_subclusters < 1 or n_classes * n_subclusters < 2:
            raise ValueError(f"need n_classes * n_subclusters >= 2, got {n_classes} x {n_subclusters}")
        if b_avg not in ("non_target", "all"):
            raise ValueError(f"b_avg must be 'non_target' or 'all', got {b_avg!r}")
        self.n_classes = int(n_classes)
        self.n_subclusters = int(n_subclusters)
        self.dim = int(dim)
        self.dynamic = bool(dynamic)
        self.b_avg = b_avg
        self.min_scale = float(min_scale)
        self.centres = _init_centres(self.n_classes * self.n_subclusters, self.dim, trainable_centres)
        initial = fixed_adacos_scale(self.n_classes * self.n_subclusters) if scale is None else float(scale)
        self.register_buffer("scale", torch.tensor(initial, dtype=torch.float32))

    def centre_cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` -> ``(B, C * K)`` cosine to every centre (class-major order)."""
        return _cosines(embeddings, self.centres)

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` -> ``(B, C)`` cosine to the closest centre of each class."""
        cos = self.centre_cosines(embeddings)
        return cos.view(-1, self.n_classes, self.n_subclusters).amax(dim=2)

    def _class_log_probs(self, cosines: torch.Tensor) -> torch.Tensor:
        z = self.scale * cosines
        per_class = torch.logsumexp(z.view(-1, self.n_classes, self.n_subclusters), dim=2)
        return per_class - torch.logsumexp(z, dim=1, keepdim=True)

    def class_probabilities(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` -> ``(B, C)`` sub-cluster-summed softmax probabilities at the current scale."""
        return self._class_log_probs(self.centre_cosines(embeddings)).exp()

    @torch.no_grad()
    def update_scale(self, cosines: torch.Tensor, targets: torch.Tensor) -> None:
        k = self.n_subclusters
        angles = torch.acos(cosines.clamp(-1.0 + _EPS, 1.0 - _EPS))
        closest = angles.view(-1, self.n_classes, k).amin(dim=2)
        if self.b_avg == "non_target":
            non_target = torch.repeat_interleave(targets <= 0, k, dim=1)
        else:
            non_target = torch.ones_like(cosines, dtype=torch.bool)
        new = dynamic_adacos_scale(self.scale, cosines, non_target, (targets * closest).sum(dim=1))
        if torch.isfinite(new):
            self.scale.copy_(new.clamp(min=self.min_scale))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        targets = soft_targets(labels, self.n_classes).to(embeddings.device)
        cosines = self.centre_cosines(embeddings)
        if self.dynamic and self.training:
            self.update_scale(cosines.detach(), targets)
        return -(targets * self._class_log_probs(cosines)).sum(dim=1).mean()


class ArcFace(nn.Module):
    """ArcFace: additive angular margin ``m`` on the target logit, fixed scale ``s``.

    The target cosine ``cos(theta)`` is replaced by ``phi = cos(theta + m)
    = cos(theta) cos(m) - sin(theta) sin(m)``; the loss is the softmax cross-entropy of
    ``s * [phi at the target, cos(theta_j) elsewhere]``. Where ``theta + m > pi`` (the margin
    would wrap around), ``phi`` falls back to ``cos(theta) - m sin(m)`` (the linear extension used
    by the reference implementation) or, with ``easy_margin=True``, the margin is only applied
    where ``cos(theta) > 0``.

    Soft targets ``y`` (mixup): the loss is ``sum_c y_c * CE_c`` where ``CE_c`` is the ArcFace
    loss with class ``c`` as the target (the margin is applied to that class only), i.e. exactly
    ``lam * L(y_a) + (1 - lam) * L(y_b)`` for a mixed pair.
    """

    def __init__(self, n_classes: int, dim: int, scale: float = 30.0, margin: float = 0.5,
                 easy_margin: bool = False, *, trainable_centres: bool = True):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"ArcFace needs at least 2 classes, got {n_classes}")
        self.n_classes = int(n_classes)
        self.dim = int(dim)
        self.scale = float(scale)
        self.margin = float(margin)
        self.easy_margin = bool(easy_margin)
        self.centres = _init_centres(self._n_centres(), self.dim, trainable_centres)

    def _n_centres(self) -> int:
        return self.n_classes

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` -> ``(B, C)`` cosine similarity to each class centre."""
        return _cosines(embeddings, self.centres)

    def margin_cosine(self, cosines: torch.Tensor) -> torch.Tensor:
        """``phi(cos) = cos(theta + m)`` with the fall-back of the class docstring, elementwise."""
        m = self.margin
        sine = torch.sqrt((1.0 - cosines * cosines).clamp(min=0.0, max=1.0))
        phi = cosines * math.cos(m) - sine * math.sin(m)
        if self.easy_margin:
            return torch.where(cosines > 0, phi, cosines)
        return torch.where(cosines > math.cos(math.pi - m), phi, cosines - math.sin(math.pi - m) * m)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        targets = soft_targets(labels, self.n_classes).to(embeddings.device)
        cosines = self.logits(embeddings)
        rows, cols = torch.nonzero(targets > 0, as_tuple=True)
        # one softmax row per (sample, target class) pair, with the margin on that class only
        base = self.scale * cosines[rows]
        with_margin = self.scale * self.margin_cosine(cosines[rows, cols])
        is_target = F.one_hot(cols, self.n_classes).bool()
        pair_logits = torch.where(is_target, with_margin[:, None], base)
        log_p = F.log_softmax(pair_logits, dim=1).gather(1, cols[:, None]).squeeze(1)
        return -(targets[rows, cols] * log_p).sum() / embeddings.shape[0]


class SubCenterArcFace(ArcFace):
    """Sub-center ArcFace: ``k`` centres per class; a class's cosine is the max over its centres,
    then the ArcFace margin and loss apply as in :class:`ArcFace`.

    Centre ``c * k + j`` is sub-centre ``j`` of class ``c``; ``logits(emb)`` is the ``(B, C)``
    per-class max cosine and ``centre_cosines(emb)`` all ``(B, C * k)`` cosines.
    """

    def __init__(self, n_classes: int, dim: int, k: int = 3, scale: float = 30.0, margin: float = 0.5,
                 easy_margin: bool = False, *, trainable_centres: bool = True):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)
        super().__init__(n_classes, dim, scale, margin, easy_margin, trainable_centres=trainable_centres)

    def _n_centres(self) -> int:
        return self.n_classes * self.k

    def centre_cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        return _cosines(embeddings, self.centres)

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.centre_cosines(embeddings).view(-1, self.n_classes, self.k).amax(dim=2)


LOSSES = {"adacos": AdaCos, "subcluster_adacos": SubClusterAdaCos, "arcface": ArcFace,
          "subcenter_arcface": SubCenterArcFace}


def build_loss(name: str, **kwargs) -> nn.Module:
    """Construct a loss by name (``adacos``, ``subcluster_adacos``, ``arcface``, ``subcenter_arcface``)."""
    key = name.lower().replace("-", "_")
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[key](**kwargs)


# --------------------------------------------------------------------------------------------------
# OS-SCL (Huang et al., ICASSP 2025, public code huangswt/OS-SCL; used by the XJU report 003):
# mixup cross-entropy on (sub-center) ArcFace logits plus a supervised contrastive loss
# --------------------------------------------------------------------------------------------------
def arcface_margin_logits(head: ArcFace, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(B, C)`` scaled ArcFace logits ``s * [cos(theta_y + m) at class labels[i], cos(theta_j) elsewhere]``.

    head: an :class:`ArcFace` or :class:`SubCenterArcFace` (per-class cosine = max over its
    sub-centres, then the margin); embeddings ``(B, D)``; labels ``(B,)`` int64, the class that
    gets the margin. These are the logits OS-SCL feeds to its mixup cross-entropy.
    """
    if labels.dim() != 1 or labels.dtype.is_floating_point:
        raise ValueError(f"labels must be (B,) int64 class indices, got {tuple(labels.shape)} {labels.dtype}")
    cosines = head.logits(embeddings)
    labels = labels.to(cosines.device).long()
    phi = head.margin_cosine(cosines.gather(1, labels[:, None]))  # (B, 1)
    is_target = F.one_hot(labels, head.n_classes).bool()
    return head.scale * torch.where(is_target, phi, cosines)


def mixup_cross_entropy(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor,
                        lam: float | torch.Tensor) -> torch.Tensor:
    """``lam * CE(logits, y_a) + (1 - lam) * CE(logits, y_b)``, each CE the batch mean.

    logits ``(B, C)``; y_a, y_b ``(B,)`` int64 (the two mixed samples' classes); lam a float in
    [0, 1] (one per batch, as in OS-SCL) or a ``(B,)`` tensor (then per sample:
    ``mean_i [lam_i CE_i(y_a) + (1 - lam_i) CE_i(y_b)]``, the same for a constant lam).
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    ce_a = -log_p.gather(1, y_a.long()[:, None]).squeeze(1)
    ce_b = -log_p.gather(1, y_b.long()[:, None]).squeeze(1)
    lam_t = torch.as_tensor(lam, dtype=log_p.dtype, device=log_p.device)
    return (lam_t * ce_a + (1.0 - lam_t) * ce_b).mean()


class SupConLoss(nn.Module):
    """Supervised contrastive loss (Khosla et al., "Supervised contrastive learning", NeurIPS 2020),
    single view, every sample an anchor, as in OS-SCL.

    With ``z_i`` the L2-normalised features, ``P(i) = {j != i : y_j = y_i}`` and
    ``A(i) = {k != i}``::

        loss_i = -(tau / tau_base) / |P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / tau)
                                                               / sum_{a in A(i)} exp(z_i.z_a / tau) )

    and the loss is the mean of ``loss_i`` over **all** ``B`` anchors; an anchor without a
    positive in the batch contributes 0 (the reference code's convention). ``tau`` =
    ``temperature`` (report 003: 0.04), ``tau_base`` = ``base_temperature`` (0.07 in the reference
    code, a constant rescaling).

    ``forward(features (B, D), labels (B,) int64) -> scalar``.
    """

    def __init__(self, temperature: float = 0.04, base_temperature: float = 0.07):
        super().__init__()
        if temperature <= 0 or base_temperature <= 0:
            raise ValueError(f"temperatures must be > 0, got {temperature}, {base_temperature}")
        self.temperature = float(temperature)
        self.base_temperature = float(base_temperature)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2:
            raise ValueError(f"features must be (B, D), got {tuple(features.shape)}")
        if labels.dim() != 1 or len(labels) != len(features):
            raise ValueError(f"labels must be (B,) = ({len(features)},), got {tuple(labels.shape)}")
        z = F.normalize(features.float(), dim=1)
        batch = z.shape[0]
        logits = z @ z.t() / self.temperature
        logits = logits - logits.max(dim=1, keepdim=True).values.detach()  # numerical stability
        not_self = ~torch.eye(batch, dtype=torch.bool, device=z.device)
        labels = labels.to(z.device)
        positive = (labels[:, None] == labels[None, :]) & not_self
        log_denominator = torch.logsumexp(logits.masked_fill(~not_self, -math.inf), dim=1, keepdim=True)
        log_prob = logits - log_denominator
        n_pos = positive.sum(dim=1).clamp(min=1)
        mean_log_prob_pos = (log_prob * positive).sum(dim=1) / n_pos
        return -(self.temperature / self.base_temperature) * mean_log_prob_pos.mean()


def os_scl_loss(head: ArcFace, supcon: SupConLoss, embeddings: torch.Tensor, y_a: torch.Tensor,
                y_b: torch.Tensor, lam: float | torch.Tensor, *, supcon_weight: float = 1.0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OS-SCL's training loss on a mixed batch: ``(total, mixup CE, SupCon)``.

    ``mixup CE`` = :func:`mixup_cross_entropy` of :func:`arcface_margin_logits` (margin on
    ``y_a``, the un-permuted labels, as in the reference code) and ``SupCon`` =
    ``supcon(embeddings, y_a)``; ``total = mixup CE + supcon_weight * SupCon``.
    """
    ce = mixup_cross_entropy(arcface_margin_logits(head, embeddings, y_a), y_a, y_b, lam)
    if supcon_weight == 0:
        sc = torch.zeros((), device=ce.device)
    else:
        sc = supcon(embeddings, y_a)
    return ce + supcon_weight * sc, ce, sc
