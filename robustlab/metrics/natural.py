"""Natural-corruption metrics from stored per-example outcomes (``natural.parquet``).

Definitions (docs/metrics.md), errors E in percent:

- ``accuracy`` per (corruption, severity) cell;
- per corruption set (noise ``imagenet_c``, ``extra_corruptions``, ``geometric_corruptions``,
  :data:`CORRUPTION_SETS`): mean ``accuracy`` over the set's (corruption, severity) cells and
  ``mce_unnormalised``, the mean of E over them (RobustART's code);
- ``ce`` per corruption c: 100 * sum_s E_model,s,c / sum_s E_base,s,c, and ``mce`` = mean_c ce
  over the corruptions of one set (Hendrycks & Dietterich, with a baseline run from the same grid
  instead of AlexNet);
- ``relative_ce``: 100 * sum_s (E_model,s,c - E_model,clean) / sum_s (E_base,s,c - E_base,clean),
  and ``relative_mce`` = mean_c relative_ce over the corruptions of one set.

mCE in the sense of Hendrycks & Dietterich is the ``imagenet_c`` row: it averages ImageNet-C's 15
corruptions only. The 4 extras and MNIST-C's 4 affine corruptions have their own rows and never
enter it. A set gets rows when at least one of its corruptions was evaluated; its means are over
the corruptions present, so an ``imagenet_c`` row over fewer than 15 corruptions is not
comparable with published mCE values (:func:`missing_corruptions` names the absent ones).

Two evaluations are always combined image by image (joined on ``index``): the model and the
baseline on the images both evaluated in a (corruption, severity) cell, and each run's clean error
E_clean of a cell on exactly that cell's images, so relative CE compares an image's corrupted and
clean predictions as Hendrycks & Dietterich do. A zero denominator gives NaN, and a NaN ``ce``
makes ``mce`` NaN (nothing is silently dropped).

``n`` is the number of distinct images behind a value: a cell's images for per-cell rows, the
images of any of a corruption's cells for ``ce`` / ``relative_ce``, the images of any of the set's
cells for the set rows (never a sum over cells).
"""

from __future__ import annotations

import math
from collections.abc import Collection

import pandas as pd

COLUMNS = ["noise", "level", "metric", "value", "n"]
REQUIRED = ("corruption", "severity", "index", "correct")
IMAGENET_C = "imagenet_c"

#: Corruption sets, each averaged on its own (the ``noise`` of the set rows). ``imagenet_c`` is
#: ImageNet-C's 15 in its order, the ones mCE averages over; ``extra_corruptions`` its 4 extra
#: (validation) corruptions; ``geometric_corruptions`` MNIST-C's 4 affine ones. The same names as
#: robustlab.noise.natural.GROUPS (checked by the tests), kept here free of the noise code.
CORRUPTION_SETS: dict[str, tuple[str, ...]] = {
    IMAGENET_C: (
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "defocus_blur",
        "glass_blur",
        "motion_blur",
        "zoom_blur",
        "snow",
        "frost",
        "fog",
        "brightness",
        "contrast",
        "elastic_transform",
        "pixelate",
        "jpeg_compression",
    ),
    "extra_corruptions": ("speckle_noise", "gaussian_blur", "spatter", "saturate"),
    "geometric_corruptions": ("shear", "rotate", "scale", "translate"),
}


def corruption_set(corruption: str) -> str:
    """The name of the set of :data:`CORRUPTION_SETS` that ``corruption`` belongs to."""
    for name, members in CORRUPTION_SETS.items():
        if corruption in members:
            return name
    raise ValueError(
        f"corruption {corruption!r} belongs to no corruption set ({', '.join(CORRUPTION_SETS)}); "
        "add it to robustlab.metrics.natural.CORRUPTION_SETS (and robustlab.noise.natural.GROUPS)"
    )


def missing_corruptions(evaluated: Collection[str], set_name: str) -> tuple[str, ...]:
    """The corruptions of set ``set_name`` that are not among ``evaluated``, in the set's order."""
    if set_name not in CORRUPTION_SETS:
        raise ValueError(
            f"unknown corruption set {set_name!r}; known: {', '.join(CORRUPTION_SETS)}"
        )
    present = set(evaluated)
    return tuple(c for c in CORRUPTION_SETS[set_name] if c not in present)


def _ratio(num: float, den: float) -> float:
    return math.nan if den == 0 or math.isnan(den) or math.isnan(num) else 100.0 * num / den


def _mean(values: list[float]) -> float:
    return math.nan if any(map(math.isnan, values)) else sum(values) / len(values)


def _checked(natural: pd.DataFrame) -> pd.DataFrame:
    """The outcome columns of ``natural`` (corruption as str) after checking columns, duplicates
    and that every corruption belongs to a set."""
    missing = [c for c in REQUIRED if c not in natural.columns]
    if missing:
        raise ValueError(
            f"natural outcomes lack column(s) {', '.join(missing)}; they are written by "
            "stages.evaluate (rule evaluate)"
        )
    dup = natural.duplicated(["corruption", "severity", "index"])
    if dup.any():
        first = natural.loc[dup].iloc[0]
        raise ValueError(
            f"natural outcomes: image index {first['index']} appears twice for corruption "
            f"{first['corruption']!r} at severity {first['severity']}; rerun "
            "stages.evaluate for this run"
        )
    frame = natural[list(REQUIRED)].copy()
    frame["corruption"] = frame["corruption"].astype(str)
    frame["severity"] = frame["severity"].astype("float64")
    frame["correct"] = frame["correct"].astype(bool)
    for name in sorted(set(frame["corruption"])):
        corruption_set(name)
    return frame


def per_image_accuracy(natural: pd.DataFrame, corruptions: Collection[str]) -> pd.Series:
    """Percent of each image's (corruption, severity) cells it got right, over the cells of
    ``corruptions`` that were evaluated: index = image index (sorted), name ``accuracy``.

    With every image in every cell (as stages.corrupt writes them) the mean of this series is the
    set's mean ``accuracy``; it is the per-image quantity for bootstrap intervals and paired tests.
    """
    frame = _checked(natural)
    rows = frame[frame["corruption"].isin(set(corruptions))]
    acc = 100.0 * rows.groupby("index", sort=True)["correct"].mean().astype("float64")
    return acc.rename("accuracy")


def cell_accuracy(natural: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and error (percent) and image count per (corruption, severity), sorted."""
    cells = (
        _checked(natural)
        .groupby(["corruption", "severity"], sort=True)["correct"]
        .agg(correct="sum", n="size")
        .reset_index()
    )
    cells["accuracy"] = 100.0 * cells["correct"].astype("float64") / cells["n"]
    cells["error"] = 100.0 - cells["accuracy"]
    return cells[["corruption", "severity", "accuracy", "error", "n"]]


def _sets_present(corruptions: Collection[str]) -> list[tuple[str, list[str]]]:
    """(set name, its corruptions among ``corruptions``) for every set with at least one."""
    present = set(corruptions)
    out = [(name, [c for c in names if c in present]) for name, names in CORRUPTION_SETS.items()]
    return [(name, members) for name, members in out if members]


def corruption_metrics(natural: pd.DataFrame) -> pd.DataFrame:
    """Per-cell ``accuracy`` rows plus, per corruption set evaluated, the mean ``accuracy`` and
    ``mce_unnormalised`` (noise = set name, level NaN): columns noise, level, metric, value, n."""
    frame = _checked(natural)
    cells = cell_accuracy(frame)
    rows: list[tuple[str, float, str, float, int]] = [
        (c, s, "accuracy", a, int(n))
        for c, s, a, n in cells[["corruption", "severity", "accuracy", "n"]].itertuples(index=False)
    ]
    for name, members in _sets_present(cells["corruption"]):
        mine = cells[cells["corruption"].isin(members)]
        images = int(frame.loc[frame["corruption"].isin(members), "index"].nunique())
        rows += [
            (name, math.nan, "accuracy", float(mine["accuracy"].mean()), images),
            (name, math.nan, "mce_unnormalised", float(mine["error"].mean()), images),
        ]
    return pd.DataFrame(rows, columns=COLUMNS)


def _clean_correct(clean: pd.DataFrame, which: str) -> pd.Series:
    """``correct`` of a clean.parquet frame indexed by image index, checked."""
    missing = [c for c in ("index", "correct") if c not in clean.columns]
    if missing:
        raise ValueError(
            f"{which} clean outcomes lack column(s) {', '.join(missing)}; they are written by "
            "stages.evaluate (rule evaluate)"
        )
    dup = clean["index"].duplicated()
    if dup.any():
        raise ValueError(
            f"{which} clean outcomes: image index {clean.loc[dup, 'index'].iloc[0]} appears twice; "
            "rerun stages.evaluate for that run"
        )
    return clean.set_index("index")["correct"].astype(bool)


def _with_clean(natural: pd.DataFrame, clean: pd.Series, column: str, which: str) -> pd.DataFrame:
    absent = ~natural["index"].isin(clean.index)
    if absent.any():
        raise ValueError(
            f"{which}: corrupted image index {natural.loc[absent, 'index'].iloc[0]} has no clean "
            "outcome in its clean.parquet; evaluate the clean test images the corruptions were "
            "drawn from (rerun stages.evaluate for that run)"
        )
    return natural.assign(**{column: clean.reindex(natural["index"]).to_numpy()})


def paired_outcomes(
    natural: pd.DataFrame,
    clean: pd.DataFrame,
    baseline_natural: pd.DataFrame,
    baseline_clean: pd.DataFrame,
) -> pd.DataFrame:
    """The model's and the baseline's outcomes on the same images: one row per (corruption,
    severity, index) both runs evaluated, with columns ``correct``, ``clean_correct`` (the
    model's), ``correct_base``, ``clean_correct_base`` (the baseline's), all bool."""
    model = _with_clean(_checked(natural), _clean_correct(clean, "model"), "clean_correct", "model")
    base = _with_clean(
        _checked(baseline_natural),
        _clean_correct(baseline_clean, "baseline"),
        "clean_correct",
        "baseline",
    )
    return model.merge(
        base, on=["corruption", "severity", "index"], how="inner", suffixes=("", "_base")
    ).sort_values(["corruption", "severity", "index"], kind="mergesort")


def normalised_metrics(
    natural: pd.DataFrame,
    clean: pd.DataFrame,
    baseline_natural: pd.DataFrame,
    baseline_clean: pd.DataFrame,
) -> pd.DataFrame:
    """``ce`` and ``relative_ce`` per corruption, ``mce`` and ``relative_mce`` per corruption set
    against a baseline run, from the per-image outcomes of both runs (natural and clean tables),
    joined on the image index: columns noise, level (NaN), metric, value, n (distinct images)."""
    paired = paired_outcomes(natural, clean, baseline_natural, baseline_clean)
    errors = pd.DataFrame(
        {
            "corruption": paired["corruption"],
            "severity": paired["severity"],
            "error": 100.0 * ~paired["correct"],
            "clean_error": 100.0 * ~paired["clean_correct"],
            "error_base": 100.0 * ~paired["correct_base"],
            "clean_error_base": 100.0 * ~paired["clean_correct_base"],
        }
    )
    # Per cell: errors (percent) of both runs, corrupted and clean, on the cell's images.
    cells = errors.groupby(["corruption", "severity"], sort=True).mean().reset_index()
    rows: list[tuple[str, float, str, float, int]] = []
    ces: dict[str, tuple[float, float]] = {}
    for corruption, g in cells.groupby("corruption", sort=True):
        ce = _ratio(g["error"].sum(), g["error_base"].sum())
        rel = _ratio(
            (g["error"] - g["clean_error"]).sum(),
            (g["error_base"] - g["clean_error_base"]).sum(),
        )
        n = int(paired.loc[paired["corruption"] == corruption, "index"].nunique())
        rows += [
            (str(corruption), math.nan, "ce", ce, n),
            (str(corruption), math.nan, "relative_ce", rel, n),
        ]
        ces[str(corruption)] = (ce, rel)
    for name, members in _sets_present(ces):
        images = int(paired.loc[paired["corruption"].isin(members), "index"].nunique())
        rows += [
            (name, math.nan, "mce", _mean([ces[c][0] for c in members]), images),
            (name, math.nan, "relative_mce", _mean([ces[c][1] for c in members]), images),
        ]
    return pd.DataFrame(rows, columns=COLUMNS)
