"""Helpers shared by the stage CLIs (argument types, thread settings, versions)."""

from __future__ import annotations

import argparse
import json
import platform
from typing import Any

import torch


def json_object(text: str) -> dict[str, Any]:
    """argparse type: a JSON object given on the command line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def set_threads(threads: int) -> None:
    """Use ``threads`` intra-op threads (0 keeps torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)


def library_versions() -> dict[str, str]:
    """Versions recorded in model cards and the report."""
    import numpy
    import pandas
    import pyarrow

    import robustlab

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "robustlab": robustlab.__version__,
    }


def derived_seed(seed: int, *parts: object) -> int:
    """A stable seed for one sub-task (e.g. an attack at one eps), independent of run order."""
    import zlib

    key = "/".join(str(p) for p in (seed, *parts))
    return zlib.crc32(key.encode())
