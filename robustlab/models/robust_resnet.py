"""A configurable residual network (RobustResNet) and the RobustScaling rule.

Skeleton (paper Sec. 3 and Fig. 2): a 3x3 stem to ``stem_width`` channels, stages of residual
blocks (the first block of every stage but the first halves the resolution), then global
average pooling and a linear classifier. Stage ``i`` has ``depths[i]`` blocks of
``round(stage_channels[i] * widths[i])`` "planes"; with the defaults (16, 32, 64) the widths are
the paper's widening factors W1..W3.

Block options (one :class:`BlockConfig` for the whole network):

- ``block``: ``basic`` (two kxk convs), ``bottleneck`` (1x1 - kxk - 1x1, output ``expansion`` x
  planes, 4 by default) or ``inverted_bottleneck`` (1x1 expansion by ``expand_ratio`` -
  depthwise kxk - 1x1 projection to planes);
- ``preact``: pre-activation (norm-act before each conv, the stem is a bare conv and the head
  starts with norm-act) or post-activation (conv-norm-act, the stem has norm-act, the sum of the
  residual and the shortcut is activated);
- aggregated convolution: the kxk conv is grouped with ``cardinality`` groups;
- hierarchical convolution (Res2Net): the bottleneck's middle channels are split in ``scales``
  chunks; chunk s > 0 goes through a conv after adding the previous chunk's output, the last
  chunk is passed through; in a strided block every chunk is strided, nothing is added and the
  last chunk is average-pooled;
- bottleneck middle width (ResNeXt convention): ``floor(planes * base_width / 64) x cardinality``
  channels per scale, ``x scales`` in all; the reference RobustResBlock (``base_width=10`` in its
  own /160 convention) is ``base_width=4, cardinality=4, scales=8``: ``2 x planes``;
- ``se``: the SE integration designs of the paper's SE comparison (its Table 5d / Fig. 11):
  ``none``; ``standard`` (``out = SE(branch) + shortcut``); ``residual``
  (``out = branch + shortcut + SE(norm(branch))``, the paper's residual SE); ``pre`` (Pre-SE:
  SE before the main components, on the branch input, after the pre-activation when
  ``preact``); ``identity`` (Identity-SE: SE on the skip connection, applied to the skip
  input before a projection shortcut, so ``in_channels`` wide); ``conv3x3`` (Conv3x3-SE: SE
  right after the kxk convolution and its norm-act, as in MobileNetV3: after the
  (hierarchical) kxk stage of a bottleneck, after the first kxk conv of a basic block).
  Hidden width ``channels // se_reduction`` (at least 1); hidden activation
  ``se_activation`` (ReLU, as the reference SE layer has it, whatever ``activation`` is),
  sigmoid gate, no biases;
- ``activation``: relu, silu, gelu, softplus; ``norm``: batch, group, layer, instance;
  ``kernel_size``: one size or one per stage.

RobustResBlock = bottleneck + pre-activation + aggregated + hierarchical + residual SE.
Deviation from the reference code, chosen on purpose: the first 1x1 conv of a pre-activation
bottleneck reads the pre-activated input (as He et al.'s pre-activation block does), whereas the
reference feeds it the raw input and uses the pre-activation only for the shortcut. Parameter and
MAC counts are identical either way.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from robustlab.models.complexity import count_macs
from robustlab.models.layers import NORMS, SqueezeExcite, make_activation, make_norm

BLOCKS = ("basic", "bottleneck", "inverted_bottleneck")
SE_KINDS = ("none", "standard", "residual", "pre", "identity", "conv3x3")
SCALING_ACTIVATIONS = ("relu", "silu", "gelu", "softplus")


@dataclass(frozen=True)
class BlockConfig:
    """Every option of a residual block (see the module docstring)."""

    block: str = "basic"
    preact: bool = True
    cardinality: int = 1
    scales: int = 1
    base_width: int = 64
    expansion: int = 4
    expand_ratio: int = 4
    se: str = "none"
    se_reduction: int = 16
    activation: str = "relu"
    norm: str = "batch"
    se_activation: str = "relu"

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ValueError(f"unknown block {self.block!r}; known: {', '.join(BLOCKS)}")
        if self.se not in SE_KINDS:
            raise ValueError(f"unknown se {self.se!r}; known: {', '.join(SE_KINDS)}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; known: {', '.join(NORMS)}")
        make_activation(self.activation)  # raises for an unknown name
        make_activation(self.se_activation)
        if min(self.cardinality, self.scales, self.base_width, self.expansion) < 1:
            raise ValueError("cardinality, scales, base_width and expansion must be >= 1")
        if self.block == "basic" and self.scales > 1:
            raise ValueError(
                "hierarchical convolution (scales > 1) needs block='bottleneck' or "
                "'inverted_bottleneck'; set scales=1 for the basic block"
            )

    def out_channels(self, planes: int) -> int:
        return planes * self.expansion if self.block == "bottleneck" else planes

    def mid_channels(self, planes: int) -> int:
        """Channels of the kxk stage of a (inverted) bottleneck."""
        if self.block == "bottleneck":
            per_scale = max(1, planes * self.base_width // 64) * self.cardinality
            return per_scale * self.scales
        per_scale = max(1, planes * self.expand_ratio // self.scales)
        return per_scale * self.scales


class HierarchicalConv(nn.Module):
    """kxk conv over ``scales`` chunks (Res2Net), each chunk conv followed by norm and activation.

    ``scales == 1`` is a plain (grouped) conv-norm-act.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        stride: int,
        groups: int,
        scales: int,
        norm: str,
        activation: str,
    ) -> None:
        super().__init__()
        if channels % scales:
            raise ValueError(f"{channels} channels do not split into {scales} scales")
        chunk = channels // scales
        if chunk % groups:
            raise ValueError(f"{chunk} channels per scale do not split into {groups} groups")
        n_convs = max(1, scales - 1)
        pad = kernel_size // 2
        self.convs = nn.ModuleList(
            nn.Conv2d(chunk, chunk, kernel_size, stride, pad, groups=groups, bias=False)
            for _ in range(n_convs)
        )
        self.norms = nn.ModuleList(make_norm(norm, chunk) for _ in range(n_convs))
        self.act = make_activation(activation)
        self.scales = scales
        self.stride = stride
        self.pool = nn.AvgPool2d(3, stride, 1) if scales > 1 and stride > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scales == 1:
            return self.act(self.norms[0](self.convs[0](x)))
        chunks = torch.chunk(x, self.scales, dim=1)
        outs: list[torch.Tensor] = []
        for s, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            inp = chunks[s] if s == 0 or self.stride > 1 else chunks[s] + outs[-1]
            outs.append(self.act(norm(conv(inp))))
        outs.append(chunks[-1] if self.pool is None else self.pool(chunks[-1]))
        return torch.cat(outs, dim=1)


class ResidualBlock(nn.Module):
    """One block of :class:`ResidualNetwork` (basic, bottleneck or inverted bottleneck)."""

    def __init__(
        self, in_channels: int, planes: int, stride: int, kernel_size: int, cfg: BlockConfig
    ) -> None:
        super().__init__()
        self.preact = cfg.preact
        self.se_kind = cfg.se
        out = cfg.out_channels(planes)
        pad = kernel_size // 2
        self.act = make_activation(cfg.activation)
        if cfg.block == "basic":
            groups = cfg.cardinality
            if in_channels % groups or planes % groups:
                raise ValueError(f"basic block {in_channels}->{planes} not divisible by {groups}")
            self.conv1 = nn.Conv2d(
                in_channels, planes, kernel_size, stride, pad, groups=groups, bias=False
            )
            self.conv2 = nn.Conv2d(planes, planes, kernel_size, 1, pad, groups=groups, bias=False)
            self.norm1 = make_norm(cfg.norm, in_channels if cfg.preact else planes)
            self.norm2 = make_norm(cfg.norm, planes)
            self.spatial = None
        else:
            mid = cfg.mid_channels(planes)
            chunk = mid // cfg.scales
            groups = cfg.cardinality if cfg.block == "bottleneck" else chunk  # depthwise
            self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
            self.spatial = HierarchicalConv(
                mid, kernel_size, stride, groups, cfg.scales, cfg.norm, cfg.activation
            )
            self.conv2 = nn.Conv2d(mid, out, 1, bias=False)
            self.norm1 = make_norm(cfg.norm, in_channels if cfg.preact else mid)
            self.norm2 = make_norm(cfg.norm, mid) if cfg.preact else make_norm(cfg.norm, out)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out:
            proj = nn.Conv2d(in_channels, out, 1, stride, bias=False)
            self.shortcut = proj if cfg.preact else nn.Sequential(proj, make_norm(cfg.norm, out))
        self.se: nn.Module | None = None
        self.se_norm: nn.Module | None = None
        if cfg.se != "none":
            se_channels = {
                "pre": in_channels,
                "identity": in_channels,
                "conv3x3": planes if cfg.block == "basic" else cfg.mid_channels(planes),
            }.get(cfg.se, out)
            self.se = SqueezeExcite(se_channels, se_channels // cfg.se_reduction, cfg.se_activation)
            if cfg.se == "residual":
                self.se_norm = make_norm(cfg.norm, out)

    def _mid_se(self, h: torch.Tensor) -> torch.Tensor:
        """Conv3x3-SE: the SE after the kxk stage; identity otherwise."""
        return self.se(h) if self.se_kind == "conv3x3" else h

    def _branch_preact(self, a: torch.Tensor) -> torch.Tensor:
        if self.spatial is None:
            return self.conv2(self._mid_se(self.act(self.norm2(self.conv1(a)))))
        return self.conv2(self._mid_se(self.spatial(self.act(self.norm2(self.conv1(a))))))

    def _branch_postact(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.norm1(self.conv1(x)))
        if self.spatial is not None:
            h = self.spatial(h)
        return self.norm2(self.conv2(self._mid_se(h)))

    def _skip(self, x: torch.Tensor, projected_input: torch.Tensor) -> torch.Tensor:
        """The shortcut: identity on ``x`` or the projection of ``projected_input``;
        Identity-SE applies the SE to the skip input first."""
        if self.shortcut is None:
            return self.se(x) if self.se_kind == "identity" else x
        inp = self.se(projected_input) if self.se_kind == "identity" else projected_input
        return self.shortcut(inp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.se_kind == "pre"
        if self.preact:
            a = self.act(self.norm1(x))
            shortcut = self._skip(x, a)
            branch = self._branch_preact(self.se(a) if pre else a)
        else:
            shortcut = self._skip(x, x)
            branch = self._branch_postact(self.se(x) if pre else x)
        if self.se_kind == "standard":
            out = self.se(branch) + shortcut
        elif self.se_kind == "residual":
            out = branch + shortcut + self.se(self.se_norm(branch))
        else:
            out = branch + shortcut
        return out if self.preact else self.act(out)


def _per_stage(value: int | Sequence[int], n: int, what: str) -> tuple[int, ...]:
    values = (value,) * n if isinstance(value, int) else tuple(value)
    if len(values) != n:
        raise ValueError(f"{what} has {len(values)} entries for {n} stages")
    return values


def stage_planes(stage_channels: Sequence[int], widths: Sequence[float]) -> list[int]:
    """Planes of each stage: ``round(channels x widening factor)``, at least 1."""
    return [max(1, round(c * w)) for c, w in zip(stage_channels, widths, strict=True)]


class ResidualNetwork(nn.Module):
    """Stem, stages of :class:`ResidualBlock`, pooled linear head (see the module docstring)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        depths: Sequence[int],
        widths: Sequence[float],
        cfg: BlockConfig,
        kernel_size: int | Sequence[int] = 3,
        stage_channels: Sequence[int] = (16, 32, 64),
        stem_width: int = 16,
        strides: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        n = len(depths)
        if len(widths) != n or len(stage_channels) != n:
            raise ValueError(
                f"depths {list(depths)}, widths {list(widths)} and stage_channels "
                f"{list(stage_channels)} must have one entry per stage"
            )
        if min(depths) < 1:
            raise ValueError(f"every stage needs at least one block, got depths {list(depths)}")
        kernels = _per_stage(kernel_size, n, "kernel_size")
        if any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f"kernel sizes must be odd (3, 5, 7, ...), got {list(kernels)}")
        strides = tuple(strides) if strides is not None else (1,) + (2,) * (n - 1)
        self.preact = cfg.preact
        self.stem = nn.Conv2d(in_channels, stem_width, 3, padding=1, bias=False)
        self.stem_norm = None if cfg.preact else make_norm(cfg.norm, stem_width)
        self.act = make_activation(cfg.activation)
        blocks: list[nn.Module] = []
        channels = stem_width
        for depth, planes, k, stride in zip(
            depths, stage_planes(stage_channels, widths), kernels, strides, strict=True
        ):
            for i in range(depth):
                blocks.append(ResidualBlock(channels, planes, stride if i == 0 else 1, k, cfg))
                channels = cfg.out_channels(planes)
        self.blocks = nn.Sequential(*blocks)
        self.head_norm = make_norm(cfg.norm, channels) if cfg.preact else None
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stem(x)
        if self.stem_norm is not None:
            out = self.act(self.stem_norm(out))
        out = self.blocks(out)
        if self.head_norm is not None:
            out = self.act(self.head_norm(out))
        return self.fc(out.mean((2, 3)))


# RobustResBlock's settings (reference: scales 8, base_width 10 per 160 planes, cardinality 4,
# SE reduction 64), applied when robust_resnet() is asked for a bottleneck block.
ROBUST_BLOCK = {
    "cardinality": 4,
    "scales": 8,
    "base_width": 4,
    "se": "residual",
    "se_reduction": 64,
}
PLAIN_BLOCK = {"cardinality": 1, "scales": 1, "base_width": 64, "se": "none", "se_reduction": 16}

# RobustResNet-A1..A4 (paper Table 7 / RobustScaling table): depths D1..D3, widths W1..W3.
ROBUST_PRESETS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "a1": ((14, 14, 7), (5, 7, 3)),
    "a2": ((17, 17, 8), (7, 9, 4)),
    "a3": ((22, 22, 11), (8, 11, 5)),
    "a4": ((27, 28, 13), (10, 14, 6)),
}


def robust_block_config(block: str = "bottleneck", **options) -> BlockConfig:
    """A :class:`BlockConfig`; unset options take RobustResBlock's values for a bottleneck and
    plain values (no grouping, no hierarchy, no SE) for the other blocks."""
    defaults = ROBUST_BLOCK if block == "bottleneck" else PLAIN_BLOCK
    chosen = {k: v for k, v in options.items() if v is not None}
    return BlockConfig(block=block, **{**defaults, **chosen})


def robust_resnet(
    num_classes: int,
    in_channels: int,
    image_size: int,
    depths: Sequence[int] = ROBUST_PRESETS["a1"][0],
    widths: Sequence[float] = ROBUST_PRESETS["a1"][1],
    block: str = "bottleneck",
    kernel_size: int | Sequence[int] = 3,
    preact: bool = True,
    cardinality: int | None = None,
    scales: int | None = None,
    base_width: int | None = None,
    se: str | None = None,
    se_reduction: int | None = None,
    activation: str = "relu",
    norm: str = "batch",
    expansion: int = 4,
    expand_ratio: int = 4,
    se_activation: str = "relu",
) -> ResidualNetwork:
    """The configurable RobustResNet (defaults: RobustResNet-A1 with RobustResBlock).

    Options left at ``None`` follow the block: RobustResBlock's settings for ``bottleneck``
    (cardinality 4, scales 8, base_width 4, residual SE with reduction 64), plain ones otherwise.
    """
    del image_size  # fully convolutional with global pooling
    cfg = robust_block_config(
        block,
        preact=preact,
        cardinality=cardinality,
        scales=scales,
        base_width=base_width,
        se=se,
        se_reduction=se_reduction,
        activation=activation,
        norm=norm,
        expansion=expansion,
        expand_ratio=expand_ratio,
        se_activation=se_activation,
    )
    return ResidualNetwork(num_classes, in_channels, depths, widths, cfg, kernel_size)


def resnet_cifar(
    num_classes: int,
    in_channels: int,
    image_size: int,
    depths: Sequence[int] = (2, 2, 2, 2),
    block: str = "basic",
    width_mult: float = 1.0,
    cardinality: int = 1,
    base_width: int = 64,
    activation: str = "relu",
    norm: str = "batch",
) -> ResidualNetwork:
    """He et al.'s ResNet / Xie et al.'s ResNeXt at CIFAR scale: post-activation, 3x3 stem of
    64 x ``width_mult`` channels, no max-pool, four stages of 64/128/256/512 x ``width_mult``
    planes."""
    del image_size
    cfg = BlockConfig(
        block=block,
        preact=False,
        cardinality=cardinality,
        base_width=base_width,
        activation=activation,
        norm=norm,
    )
    return ResidualNetwork(
        num_classes,
        in_channels,
        depths,
        (width_mult,) * 4,
        cfg,
        stage_channels=(64, 128, 256, 512),
        stem_width=max(1, round(64 * width_mult)),
    )


# --------------------------------------------------------------------------------------------
# RobustScaling


@functools.lru_cache(maxsize=4096)
def _block_macs(
    in_channels: int, planes: int, stride: int, kernel: int, size: int, cfg: BlockConfig
) -> int:
    """MACs of one block on a ``size`` x ``size`` input, counted on the meta device."""
    with torch.device("meta"):
        block = ResidualBlock(in_channels, planes, stride, kernel, cfg)
    return count_macs(block, (in_channels, size, size))


def network_macs(
    depths: Sequence[float],
    widths: Sequence[float],
    cfg: BlockConfig,
    image_size: int = 32,
    in_channels: int = 3,
    num_classes: int = 10,
    kernel_size: int | Sequence[int] = 3,
    stage_channels: Sequence[int] = (16, 32, 64),
    stem_width: int = 16,
) -> float:
    """MACs of :class:`ResidualNetwork` without building it (exact for integer depths).

    The count is ``stem + sum_i [first block_i + (D_i - 1) x other block_i] + head``, each block
    counted once on the meta device; real-valued depths interpolate linearly (used by
    :func:`robust_scaling` to solve for the continuous scale).
    """
    n = len(depths)
    kernels = _per_stage(kernel_size, n, "kernel_size")
    total = float(stem_width * in_channels * 9 * image_size * image_size)
    channels, size = stem_width, image_size
    for s, (depth, planes, k) in enumerate(
        zip(depths, stage_planes(stage_channels, widths), kernels, strict=True)
    ):
        stride = 1 if s == 0 else 2
        first = _block_macs(channels, planes, stride, k, size, cfg)
        size, channels = (size - 1) // stride + 1, cfg.out_channels(planes)
        other = _block_macs(channels, planes, 1, k, size, cfg)
        total += first + (depth - 1) * other
    return total + channels * num_classes


def robust_scaling(
    target_macs: float,
    block: str | BlockConfig = "basic",
    image_size: int = 32,
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    kernel_size: int = 3,
    depth_ratio: float = 0.7,
    depth_split: Sequence[float] = (2, 2, 1),
    width_split: Sequence[float] = (2, 2.5, 1),
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """RobustScaling: stage depths D and widening factors W for a MAC budget.

    ``sum(D) / (sum(D) + sum(W)) = depth_ratio`` (7:3), ``D1:D2:D3 = depth_split`` (2:2:1),
    ``W1:W2:W3 = width_split`` (2:2.5:1). ``block`` is a block name (options as in
    :func:`robust_resnet`, i.e. RobustResBlock for ``bottleneck``) or a :class:`BlockConfig`.
    The default is the WRN basic block: the paper derived RobustScaling on WRNs and reuses the
    resulting D and W for RobustResNet-A1..A4; ``block="bottleneck"`` scales by RobustResBlock's
    own MACs instead (used for ``robust_resnet_tiny``).

    Rounding rule (the paper's is unpublished): solve the continuous scale ``w`` with
    ``W = width_split x w`` and ``D = depth_split x c x w``, ``c`` fixed by the 7:3 ratio, so the
    MACs hit the target; then try every combination of rounding each of the six entries down or
    up (at least 1) and keep the one whose MACs are closest to the target in log scale, ties
    going to the smallest deviation from the continuous solution. ``docs/architectures.md``
    lists how close this lands to the paper's A1..A4.
    """
    cfg = block if isinstance(block, BlockConfig) else robust_block_config(block)
    if target_macs <= 0:
        raise ValueError(f"target_macs must be positive, got {target_macs}")
    if not 0 < depth_ratio < 1:
        raise ValueError(f"depth_ratio must be in (0, 1), got {depth_ratio}")
    dsplit, wsplit = tuple(depth_split), tuple(width_split)
    c = depth_ratio / (1 - depth_ratio) * sum(wsplit) / sum(dsplit)

    def macs(depths: Sequence[float], widths: Sequence[float]) -> float:
        return network_macs(depths, widths, cfg, image_size, in_channels, num_classes, kernel_size)

    def continuous(w: float) -> tuple[list[float], list[float]]:
        return [max(1.0, d * c * w) for d in dsplit], [max(1.0 / 16, x * w) for x in wsplit]

    lo, hi = 1e-3, 1.0
    while macs(*continuous(hi)) < target_macs:
        lo, hi = hi, hi * 2
        if hi > 1e4:
            raise ValueError(f"target_macs {target_macs:.3g} is out of reach")
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if macs(*continuous(mid)) < target_macs else (lo, mid)
    d_cont, w_cont = continuous(math.sqrt(lo * hi))

    def options(x: float) -> list[int]:
        return sorted({max(1, math.floor(x)), max(1, math.ceil(x))})

    best: tuple[float, float, tuple[int, ...], tuple[int, ...]] | None = None
    for depths in itertools.product(*(options(x) for x in d_cont)):
        for widths in itertools.product(*(options(x) for x in w_cont)):
            miss = abs(math.log(macs(depths, widths) / target_macs))
            drift = sum(
                abs(a - b) / b for a, b in zip(depths + widths, d_cont + w_cont, strict=True)
            )
            key = (round(miss, 12), drift, depths, widths)
            if best is None or key < best:
                best = key
    assert best is not None
    return best[2], best[3]
