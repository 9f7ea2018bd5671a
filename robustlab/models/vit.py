"""Vision Transformer / DeiT (Dosovitskiy et al., Touvron et al.) and MLP-Mixer (Tolstikhin et al.).

Both cut the image into non-overlapping ``patch_size`` patches with one strided conv
(``image_size`` must be a multiple of ``patch_size``). The ViT is pre-norm with a class token and
learned position embeddings; the attention matrices are explicit matmuls (``q @ k^T``,
``attn @ v``) whose MACs the attention module reports to :func:`count_macs`.
"""

from __future__ import annotations

import torch
from torch import nn


def _grid(image_size: int, patch_size: int) -> int:
    if patch_size < 1 or image_size % patch_size:
        raise ValueError(
            f"image_size {image_size} must be a multiple of patch_size {patch_size}; "
            "choose a patch size that divides the image size"
        )
    return image_size // patch_size


class PatchEmbed(nn.Module):
    """Strided conv patchify: (B, C, H, W) -> (B, tokens, dim)."""

    def __init__(self, in_channels: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with explicit matmuls."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(out)

    def extra_macs(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        """``q @ k^T`` and ``attn @ v``: tokens^2 x dim MACs each (per batch element)."""
        b, n, d = inputs[0].shape
        return 2 * b * n * n * d


class Mlp(nn.Sequential):
    """Linear - GELU - Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class TransformerBlock(nn.Module):
    """Pre-norm attention and MLP with residual connections."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """Patch embedding, class token, position embeddings, transformer blocks, LayerNorm, head."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        patch_size: int = 4,
        dim: int = 192,
        depth: int = 12,
        heads: int = 3,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        tokens = _grid(image_size, patch_size) ** 2
        self.patch = PatchEmbed(in_channels, dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        self.blocks = nn.Sequential(
            *(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class MixerBlock(nn.Module):
    """Token-mixing MLP across patches, then channel-mixing MLP, each pre-norm and residual."""

    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = Mlp(tokens, token_hidden)
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = Mlp(dim, channel_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class MLPMixer(nn.Module):
    """Patch embedding, Mixer blocks, LayerNorm, mean over patches, head."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        patch_size: int = 4,
        dim: int = 512,
        depth: int = 8,
        token_mlp_dim: int = 256,
        channel_mlp_dim: int = 2048,
    ) -> None:
        super().__init__()
        tokens = _grid(image_size, patch_size) ** 2
        self.patch = PatchEmbed(in_channels, dim, patch_size)
        self.blocks = nn.Sequential(
            *(MixerBlock(tokens, dim, token_mlp_dim, channel_mlp_dim) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.blocks(self.patch(x)))
        return self.head(x.mean(dim=1))


def vit(
    num_classes: int,
    in_channels: int,
    image_size: int,
    patch_size: int = 4,
    dim: int = 192,
    depth: int = 12,
    heads: int = 3,
    mlp_ratio: float = 4.0,
) -> VisionTransformer:
    """ViT / DeiT; the defaults are DeiT-tiny's (dim 192, depth 12, 3 heads) with 4 px patches."""
    return VisionTransformer(
        num_classes, in_channels, image_size, patch_size, dim, depth, heads, mlp_ratio
    )


def mlp_mixer(
    num_classes: int,
    in_channels: int,
    image_size: int,
    patch_size: int = 4,
    dim: int = 512,
    depth: int = 8,
    token_mlp_dim: int = 256,
    channel_mlp_dim: int = 2048,
) -> MLPMixer:
    """MLP-Mixer; the defaults are Mixer-S's widths with 4 px patches."""
    return MLPMixer(
        num_classes,
        in_channels,
        image_size,
        patch_size,
        dim,
        depth,
        token_mlp_dim,
        channel_mlp_dim,
    )
