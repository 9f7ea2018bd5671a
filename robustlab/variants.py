"""Named technique variants: which registered technique a run uses and where CLAT starts.

A run's technique key (the last part of ``dataset/arch/technique``) is either a registered
technique (``pgd_at``, ``pgd_at+clat``) or a variant: a key of ``techniques:`` whose
``technique`` option names the registered one, with its own options, an optional training
``seed`` and, for CLAT, ``pretrained`` (the technique key of the run it fine-tunes). Torch-free:
workflow/labconfig resolves variants with it, the report and the comparisons read the same
facts back from the cards (``technique``, ``variant``, ``seed``, ``pretrained``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CLAT_SUFFIX = "+clat"
#: options of a variant entry that are not options of its technique
VARIANT_KEYS = ("technique", "seed", "pretrained")


def clat_base(technique: str) -> str | None:
    """X for a registered technique named "X+clat", else None."""
    return technique[: -len(CLAT_SUFFIX)] if technique.endswith(CLAT_SUFFIX) else None


def arm_name(key: str, seed: int | None) -> str:
    """The variant without its seed: ``clat_s1`` with seed 1 -> ``clat`` (suffixes ``_s1``,
    ``-s1``, ``_seed1``, ``_1``); a key without such a suffix is its own arm."""
    if seed is None:
        return key
    match = re.fullmatch(rf"(.+?)[_-](?:s|seed)?{int(seed)}", key)
    return match.group(1) if match else key


@dataclass(frozen=True)
class Variant:
    """One run technique: its key, the registered technique, the run CLAT starts from."""

    key: str
    #: the registered technique (``pgd_at``, ``pgd_at+clat``)
    technique: str
    #: technique key of the run a CLAT variant fine-tunes (None: not CLAT)
    pretrained: str | None = None
    #: the training seed of this run (None: the global seed)
    seed: int | None = None

    @property
    def is_clat(self) -> bool:
        return clat_base(self.technique) is not None

    @property
    def arm(self) -> str:
        """The variant without its seed (runs of one arm differ only in their seed)."""
        return arm_name(self.key, self.seed)


def variant_of(key: str, entry: Mapping[str, Any] | None = None) -> Variant:
    """The variant a ``techniques:`` entry defines (a registered key: itself)."""
    entry = entry or {}
    technique = str(entry.get("technique", key))
    pretrained = entry.get("pretrained", clat_base(technique))
    return Variant(key, technique, pretrained, entry.get("seed"))


def variant_from_card(key: str, card: Mapping[str, Any]) -> Variant:
    """The variant of a run from its card: registered technique, the run CLAT started from
    (``pretrained``; cards of registered X+clat runs: X) and the training seed (``seed``)."""
    technique = str(card.get("technique", key))
    pretrained = card.get("pretrained")
    if pretrained is None:
        pretrained = clat_base(technique)
    seed = card.get("seed")
    return Variant(key, technique, pretrained, None if seed is None else int(seed))
