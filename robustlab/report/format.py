"""Text formats of the numbers the report shows (shared by the figures and the HTML)."""

from __future__ import annotations

import math
import re

FAMILY_NAMES = {"cnn": "CNN", "transformer": "Transformer", "mlp": "MLP-Mixer"}


def format_level(level: float) -> str:
    """Short stable text for an eps or severity (``0.05``, ``0.0313725``, ``3``)."""
    return f"{level:.6g}"


def format_percent(value: float | None) -> str:
    """``12.35`` (two decimals); ``n/a`` for NaN or None."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.2f}"


def format_interval(low: float | None, high: float | None) -> str:
    """``[68.1, 80.9]`` (one decimal); empty when there is no interval."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    return f"[{low:.1f}, {high:.1f}]"


def format_count(value: float | None) -> str:
    """Parameter / MAC counts with a k/M/G suffix (``2.50M``); ``n/a`` for NaN or None."""
    if value is None or math.isnan(value):
        return "n/a"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def family_name(family: str) -> str:
    """Display name of an architecture family (``cnn`` -> ``CNN``)."""
    return FAMILY_NAMES.get(family, family or "unknown")


def model_label(arch: str, technique: str) -> str:
    """``arch/technique``: how one model is named in legends and tables."""
    return f"{arch}/{technique}"


def slug(text: str) -> str:
    """A lower-case identifier made of letters, digits, ``-`` and ``_``."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "x"
