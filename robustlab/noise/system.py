"""System noise (ImageNet-S style): the same image stored, decoded and resized by different code.

Each test image (uint8 H x W x C, C = 1 grey or 3 RGB) is

1. upsampled to ``stored_size`` with PIL's bicubic filter (the "camera" image; an identity when
   the sizes are equal),
2. encoded once by PIL as JPEG (``quality``, PIL's default 4:2:0 chroma subsampling for RGB) or
   PNG (lossless),
3. decoded by every decoder of the variants (``pil``: Pillow; ``opencv``: ``cv2.imdecode``, BGR
   turned to RGB; grey images stay one channel),
4. resized back to H x W by the variant's resizer: PIL's nearest, bilinear, bicubic, box, hamming,
   lanczos (``Image.resize``, antialiased when downscaling) and OpenCV's nearest, linear, area,
   cubic, lanczos4 (``cv2.resize``).

A variant is a (decoder, resize) pair named ``{decoder}-{resize}``, e.g. ``pil-pil_bilinear`` or
``opencv-pil_bilinear``. Grids: ``sweep`` (RobustART's) = every resize with the default decoder
``pil`` plus every decoder with the default resize ``pil_bilinear`` (12 variants); ``full`` = all
2 x 11 pairs. Everything is deterministic.

RobustART's code resizes to 8/7 of the target and centre-crops (ImageNet evaluation); here the
resize goes straight to the model's input size, since a crop would cut away the border of the
28-32 px images the models were trained on.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from robustlab.registry import Registry

Decoder = Callable[[bytes, int], np.ndarray]  # encoded bytes, channels -> uint8 H x W x C
Resizer = Callable[[np.ndarray, tuple[int, int]], np.ndarray]  # image, (height, width) -> image

decoders: Registry[Decoder] = Registry("system-noise decoder")
resizers: Registry[Resizer] = Registry("system-noise resize")

FORMATS = ("jpeg", "png")
GRIDS = ("sweep", "full")
DEFAULT_DECODER = "pil"
DEFAULT_RESIZE = "pil_bilinear"
UPSAMPLE = "pil_bicubic"


def _to_pil(image: np.ndarray) -> Image.Image:
    """H x W x C uint8 -> PIL image, mode "L" for C = 1 and "RGB" for C = 3."""
    return Image.fromarray(np.ascontiguousarray(image[..., 0] if image.shape[-1] == 1 else image))


def _with_channels(array: np.ndarray) -> np.ndarray:
    return array[..., None] if array.ndim == 2 else array


@decoders.register("pil")
def decode_pil(data: bytes, channels: int) -> np.ndarray:
    """Decode with Pillow, converted to "L" (C = 1) or "RGB" (C = 3)."""
    with Image.open(io.BytesIO(data)) as image:
        return _with_channels(np.asarray(image.convert("L" if channels == 1 else "RGB")))


@decoders.register("opencv")
def decode_opencv(data: bytes, channels: int) -> np.ndarray:
    """Decode with ``cv2.imdecode`` (grey, or colour turned from BGR to RGB)."""
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if image is None:
        raise ValueError("OpenCV could not decode the stored image")
    return _with_channels(image if channels == 1 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def _pil_resizer(method: Image.Resampling) -> Resizer:
    def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        height, width = size
        return _with_channels(np.asarray(_to_pil(image).resize((width, height), method)))

    return resize


def _opencv_resizer(method: int) -> Resizer:
    def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        height, width = size
        src = np.ascontiguousarray(image[..., 0] if image.shape[-1] == 1 else image)
        return _with_channels(cv2.resize(src, (width, height), interpolation=method))

    return resize


_R = Image.Resampling
for _name, _method in {
    "nearest": _R.NEAREST,
    "bilinear": _R.BILINEAR,
    "bicubic": _R.BICUBIC,
    "box": _R.BOX,
    "hamming": _R.HAMMING,
    "lanczos": _R.LANCZOS,
}.items():
    resizers.register(f"pil_{_name}")(_pil_resizer(_method))
for _name, _code in {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "cubic": cv2.INTER_CUBIC,
    "lanczos4": cv2.INTER_LANCZOS4,
}.items():
    resizers.register(f"opencv_{_name}")(_opencv_resizer(_code))


@dataclass(frozen=True)
class Variant:
    """One system-noise variant: a decoder and a resize method, both registry names."""

    decoder: str
    resize: str

    @property
    def name(self) -> str:
        return f"{self.decoder}-{self.resize}"


def _resize_order() -> list[str]:
    """PIL's then OpenCV's resizers, in the order of the module docstring."""
    pil = ["nearest", "bilinear", "bicubic", "box", "hamming", "lanczos"]
    opencv = ["nearest", "linear", "area", "cubic", "lanczos4"]
    return [f"pil_{m}" for m in pil] + [f"opencv_{m}" for m in opencv]


def variant_grid(grid: str = "sweep") -> list[Variant]:
    """The variants of ``grid``: ``sweep`` (default decoder x every resize, then every other
    decoder x the default resize) or ``full`` (every decoder x every resize)."""
    if grid not in GRIDS:
        raise ValueError(f"unknown system-noise grid {grid!r}; known: {', '.join(GRIDS)}")
    decoder_names = [DEFAULT_DECODER] + [d for d in decoders.names() if d != DEFAULT_DECODER]
    if grid == "full":
        return [Variant(d, r) for d in decoder_names for r in _resize_order()]
    sweep = [Variant(DEFAULT_DECODER, r) for r in _resize_order()]
    return sweep + [Variant(d, DEFAULT_RESIZE) for d in decoder_names[1:]]


def variant_from_name(name: str) -> Variant:
    """Parse ``{decoder}-{resize}``; either part unknown is an error listing the known names."""
    decoder, sep, resize = name.partition("-")
    if not sep:
        raise ValueError(f"system-noise variant {name!r} is not of the form DECODER-RESIZE")
    decoders.get(decoder)
    resizers.get(resize)
    return Variant(decoder, resize)


def _check(images: np.ndarray) -> None:
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must be uint8 N x H x W x C with C = 1 or 3, got {images.dtype} {images.shape}"
        )


def _size(stored_size: int | tuple[int, int]) -> tuple[int, int]:
    size = (stored_size, stored_size) if isinstance(stored_size, int) else tuple(stored_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(
            f"stored_size must be a positive int or (height, width), got {stored_size!r}"
        )
    return size  # type: ignore[return-value]


def encode_image(image: np.ndarray, fmt: str, quality: int = 75) -> bytes:
    """Encode one H x W x C uint8 image with PIL as ``jpeg`` (at ``quality``) or ``png``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown storage format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "jpeg" and (isinstance(quality, bool) or not 1 <= int(quality) <= 100):
        raise ValueError(f"JPEG quality must be an integer in 1-100, got {quality!r}")
    buffer = io.BytesIO()
    if fmt == "jpeg":
        _to_pil(image).save(buffer, format="JPEG", quality=int(quality))
    else:
        _to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def store_image(
    image: np.ndarray, stored_size: int | tuple[int, int], fmt: str, quality: int = 75
) -> bytes:
    """Upsample one image to ``stored_size`` (PIL bicubic) and encode it."""
    big = resizers.get(UPSAMPLE)(image, _size(stored_size))
    return encode_image(big, fmt, quality)


def system_noise(
    images: np.ndarray,
    stored_size: int | tuple[int, int],
    fmt: str = "jpeg",
    quality: int = 75,
    variants: str | Sequence[Variant] = "sweep",
) -> tuple[list[Variant], np.ndarray]:
    """The variants and their images, uint8 V x N x H x W x C at the input size.

    ``variants`` is a grid name (``sweep``, ``full``) or a list of :class:`Variant`.
    """
    _check(images)
    chosen = variant_grid(variants) if isinstance(variants, str) else list(variants)
    for v in chosen:  # fail on an unknown name before any work
        decoders.get(v.decoder)
        resizers.get(v.resize)
    size = _size(stored_size)
    n, h, w, c = images.shape
    out = np.empty((len(chosen), n, h, w, c), np.uint8)
    needed = sorted({v.decoder for v in chosen})
    for i, image in enumerate(images):
        data = store_image(image, size, fmt, quality)
        decoded = {d: decoders.get(d)(data, c) for d in needed}
        for k, v in enumerate(chosen):
            out[k, i] = resizers.get(v.resize)(decoded[v.decoder], (h, w))
    return chosen, out
