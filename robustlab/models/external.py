"""Models robustlab did not train: checked, then wrapped to take [0, 1] images.

Two kinds of file are read, and nothing is unpickled:

- **safetensors weights** of a registered architecture (:func:`import_weights`): the header is
  checked before any tensor is read (a pickle or a ``torch.save`` zip renamed to
  ``.safetensors`` is refused by its content), then the keys and shapes are compared with the
  architecture's, so a mismatch is listed key by key instead of failing inside torch.
- **torch.export programs** (``.pt2``, :func:`load_program`): the archive's member list and
  payload configs are checked first (:func:`check_program_archive`): only the JSON graph, raw
  tensor payloads and a sample-inputs file that the weights-only unpickler reads are allowed;
  pickled weights or constants, torchbind and opaque objects, AOTInductor libraries and the
  legacy ``torch.save`` layouts are refused. ``torch.export.load`` then runs with
  ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1``. What is trusted: torch's export deserializer, which builds
  the graph from JSON and resolves its calls to registered torch operators only, and torch's
  weights-only unpickler (tensors and plain containers).

Both are wrapped so that the model takes float images in [0, 1] and normalises them inside
(:class:`~robustlab.models.layers.Normalize`), like every robustlab model.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from robustlab.models import build_model
from robustlab.models.layers import Classifier, Normalize

#: the first bytes of a zip archive (torch.save's format, torch.export's archives)
ZIP_MAGIC = b"PK\x03\x04"
#: a safetensors header larger than this is not one (the format caps it at 100 MB)
MAX_HEADER = 100_000_000
CONVERT_HINT = (
    "convert it where you trust the file: state = torch.load(path, weights_only=True); "
    "safetensors.torch.save_file(state, 'model.safetensors') (docs/external_models.md)"
)


class ExternalModelError(ValueError):
    """An external model file that cannot be imported; the message says what was expected."""


def sniff(path: str | os.PathLike[str]) -> str:
    """What a file's first bytes say it is: ``safetensors``, ``zip``, ``pickle`` or ``unknown``."""
    with open(path, "rb") as handle:
        head = handle.read(9)
        size = os.fstat(handle.fileno()).st_size
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"  # PROTO opcode: a pickle (torch.save's legacy format, .bin files)
    if len(head) == 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= min(MAX_HEADER, size - 8) and head[8:9] == b"{":
            return "safetensors"
    return "unknown"


def _check_safetensors(path: Path) -> None:
    kind = sniff(path)
    if kind == "safetensors":
        with open(path, "rb") as handle:
            (n,) = struct.unpack("<Q", handle.read(8))
            try:
                header = json.loads(handle.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError):
                header = None
        if isinstance(header, dict):
            return
    what = {
        "zip": "a zip archive (torch.save's format, which unpickles arbitrary objects)",
        "pickle": "a Python pickle (which can run arbitrary code when loaded)",
    }.get(kind, "not a safetensors file (no valid 8-byte length + JSON header)")
    raise ExternalModelError(
        f"{path}: expected safetensors weights, but the file is {what}; robustlab never "
        f"unpickles model files; {CONVERT_HINT}"
    )


def read_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, after checking by content that it is one."""
    from safetensors.torch import load_file

    path = Path(path)
    _check_safetensors(path)
    return load_file(str(path))


def state_dict_problems(
    expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]
) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches of ``got`` against ``expected``."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    for key, value in expected.items():
        if key in got and tuple(got[key].shape) != tuple(value.shape):
            problems.append(
                f"shape of {key}: got {tuple(got[key].shape)} expected {tuple(value.shape)}"
            )
    return problems


def _class_keys(build, num_classes: int) -> dict[str, int]:
    """Keys whose shape depends on the class count, and the dimension holding it."""
    with torch.device("meta"):
        a = build(num_classes).state_dict()
        b = build(num_classes + 1).state_dict()
    out = {}
    for key, value in a.items():
        diff = [i for i, (p, q) in enumerate(zip(value.shape, b[key].shape, strict=True)) if p != q]
        if len(diff) == 1:
            out[key] = diff[0]
    return out


def _classes_in(
    got: Mapping[str, torch.Tensor], class_keys: Mapping[str, int], num_classes: int
) -> int | None:
    """The class count the checkpoint's head has, when its class-dependent tensors agree."""
    counts = {got[k].shape[d] for k, d in class_keys.items() if k in got and got[k].dim() > d}
    counts.discard(num_classes)
    return counts.pop() if len(counts) == 1 else None


def import_weights(
    path: str | os.PathLike[str],
    arch: str,
    num_classes: int,
    in_channels: int,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    options: Mapping[str, object] | None = None,
    key_prefix: str | None = None,
    dataset: str = "the dataset",
) -> Classifier:
    """A registered architecture with the external weights of ``path`` (eval mode).

    The file holds the network's own state dict (without robustlab's normalisation);
    ``key_prefix`` (e.g. ``module.``) is removed from the keys that start with it. Raises
    :class:`ExternalModelError` naming every missing, unexpected or mis-shaped key, or the class
    count when only the classifier head disagrees.
    """
    tensors = read_weights(path)
    if key_prefix:
        tensors = {k.removeprefix(key_prefix): v for k, v in tensors.items()}
    options = dict(options or {})

    def build(classes: int) -> Classifier:
        return build_model(
            arch, classes, in_channels, image_size, mean=list(mean), std=list(std), **options
        )

    model = build(num_classes)
    problems = state_dict_problems(model.net.state_dict(), tensors)
    if problems:
        classes = _classes_in(
            tensors, _class_keys(lambda n: build(n).net, num_classes), num_classes
        )
        lead = (
            f"the model outputs {classes} classes; {dataset} has {num_classes}. "
            if classes is not None
            else ""
        )
        raise ExternalModelError(
            f"{path}: {lead}the weights do not fit {arch} with options {options} "
            f"({in_channels} channels, {image_size} px, {num_classes} classes): "
            + "; ".join(problems)
        )
    model.net.load_state_dict(tensors)
    return model.eval()


# --- torch.export programs -----------------------------------------------------------------

#: archive members a program may hold (after the archive's root folder); anything else is refused
_PROGRAM_FILES = {
    "archive_format",
    "archive_version",
    "byteorder",
    "models/model.json",
    "data/weights/model_weights_config.json",
    "data/constants/model_constants_config.json",
    "data/sample_inputs/model.pt",
}
_PROGRAM_PREFIXES = ("data/weights/weight_", "data/constants/tensor_", ".data/", "extra/")


def _members(archive: zipfile.ZipFile) -> dict[str, str]:
    """Archive member -> its name below the root folder (torch.export writes one root)."""
    out = {}
    for name in archive.namelist():
        if name.endswith("/"):
            continue
        _, _, rest = name.partition("/")
        out[rest or name] = name
    return out


def check_program_archive(path: str | os.PathLike[str]) -> None:
    """Refuse a .pt2 file that is not a plain torch.export archive (see the module docstring)."""
    path = Path(path)
    if sniff(path) != "zip" or not zipfile.is_zipfile(path):
        raise ExternalModelError(
            f"{path}: expected a torch.export program (a zip archive written by "
            f"torch.export.save), but the file is not a zip archive"
        )
    with zipfile.ZipFile(path) as archive:
        members = _members(archive)
        if "archive_format" not in members or "models/model.json" not in members:
            pickled = [m for m in members if m.endswith(".pkl")]
            detail = (
                f"it holds {pickled[0]} (a torch.save pickle, which robustlab never loads)"
                if pickled
                else "it lacks archive_format and models/model.json"
            )
            raise ExternalModelError(
                f"{path}: not a torch.export archive: {detail}; export the model with "
                f"torch.export.export(model.eval(), ...) and torch.export.save"
            )
        fmt = archive.read(members["archive_format"]).decode(errors="replace").strip()
        if fmt != "pt2":
            raise ExternalModelError(f"{path}: archive_format is {fmt!r}, expected 'pt2'")
        other = sorted(
            m for m in members if m not in _PROGRAM_FILES and not m.startswith(_PROGRAM_PREFIXES)
        )
        if other:
            raise ExternalModelError(
                f"{path}: the archive holds {', '.join(other)}; robustlab imports a single "
                f"exported program named 'model' with raw tensor payloads only (no pickled "
                f"objects, AOTInductor libraries or other models)"
            )
        for config in ("data/weights/model_weights_config.json",
                       "data/constants/model_constants_config.json"):  # fmt: skip
            if config not in members:
                raise ExternalModelError(f"{path}: the archive lacks {config}")
            entries = json.loads(archive.read(members[config]))["config"]
            pickled = sorted(k for k, v in entries.items() if v.get("use_pickle"))
            if pickled:
                raise ExternalModelError(
                    f"{path}: {config} stores {', '.join(pickled)} as pickles (tensor "
                    f"subclasses or objects); robustlab imports plain tensors only"
                )
        if "data/sample_inputs/model.pt" in members:
            sample = archive.read(members["data/sample_inputs/model.pt"])
            try:
                torch.load(io.BytesIO(sample), weights_only=True)
            except Exception as err:  # noqa: BLE001 - any failure means it needs pickle
                raise ExternalModelError(
                    f"{path}: the archive's sample inputs are not plain tensors "
                    f"(the weights-only unpickler refuses them: {err})"
                ) from None


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Every torch.load in the block uses the weights-only unpickler."""
    key = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[key]
        else:
            os.environ[key] = before


class ProgramClassifier(nn.Module):
    """``Normalize`` followed by an exported program: takes [0, 1] images like a Classifier.

    The program runs in the mode it was exported in (export it after ``model.eval()``);
    ``train()``/``eval()`` switch only the wrapper, and ``train(True)`` is refused.
    """

    def __init__(self, program: nn.Module, normalize: Normalize, family: str) -> None:
        super().__init__()
        self.normalize = normalize
        self.program = program
        self.family = family
        self.training = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(self.normalize(x))

    def train(self, mode: bool = True) -> ProgramClassifier:
        if mode:
            raise RuntimeError("an imported torch.export program cannot be trained")
        self.training = False
        self.normalize.training = False
        return self


def load_program(
    path: str | os.PathLike[str],
    mean: Sequence[float],
    std: Sequence[float],
    family: str,
    device: torch.device | str = "cpu",
) -> ProgramClassifier:
    """A checked torch.export program wrapped with its input normalisation, on ``device``."""
    check_program_archive(path)
    with _weights_only_loads():
        program = torch.export.load(str(path))
    if torch.device(device).type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, torch.device(device))
    return ProgramClassifier(program.module(), Normalize(mean, std), family).to(device)


def check_outputs(
    model: nn.Module, num_classes: int, in_channels: int, image_size: int, dataset: str
) -> None:
    """The model maps a batch of the dataset's images to one row of ``num_classes`` logits per
    image, whatever the batch size, and each row depends only on its own image (no batch norm
    in training mode)."""
    shape = (in_channels, image_size, image_size)
    x = torch.rand((3, *shape), generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            out = model(x)
            single = model(x[:1])
    except Exception as err:  # noqa: BLE001 - the program's own error, reported with context
        raise ExternalModelError(
            f"the model fails on a batch of {dataset} images (N, {in_channels}, {image_size}, "
            f"{image_size}): {str(err).splitlines()[0] if str(err) else type(err).__name__}; "
            f"export it for that input shape with a dynamic batch dimension"
        ) from None
    if out.dim() != 2 or out.shape[0] != 3:
        raise ExternalModelError(
            f"the model's output has shape {tuple(out.shape)} for 3 images; expected (3, "
            f"{num_classes}) logits"
        )
    if out.shape[1] != num_classes:
        raise ExternalModelError(
            f"the model outputs {out.shape[1]} classes; {dataset} has {num_classes}"
        )
    if not torch.allclose(out[:1], single, rtol=1e-4, atol=1e-5):
        raise ExternalModelError(
            "an image's logits change with the other images of its batch (batch norm or "
            "dropout in training mode?); export the model after model.eval()"
        )
