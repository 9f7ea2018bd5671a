"""Transfer attack success rates from stored per-example outcomes (RobustART's definition).

ASR(s -> t): among the images that both the source s and the target t classify correctly on
the clean input, the percent whose adversarial example crafted on s fools t. The diagonal
(s = t) is the white-box success rate of the crafting attack.
"""

from __future__ import annotations

import math

import pandas as pd

TRANSFER_COLUMNS = [
    "dataset",
    "source_arch",
    "source_technique",
    "target_arch",
    "target_technique",
    "attack",
    "eps",
    "asr",
    "n",
]


def transfer_asr(
    dataset: str,
    target_arch: str,
    target_technique: str,
    transfer: pd.DataFrame,
    target_clean: pd.DataFrame,
) -> pd.DataFrame:
    """Rows of ``results/transfer.parquet`` for one target from its ``transfer.parquet`` outcomes
    and its ``clean.parquet`` predictions (joined on ``index``)."""
    target_ok = target_clean.set_index("index")["correct"].astype(bool)
    missing = set(transfer["index"]) - set(target_ok.index)
    if missing:
        raise ValueError(
            f"transfer outcomes name {len(missing)} image(s) absent from the target's clean "
            f"outcomes (e.g. index {min(missing)}); rerun the target's evaluate job"
        )
    rows = []
    keys = ["source_arch", "source_technique", "attack", "eps"]
    for (source_arch, source_technique, attack, eps), group in transfer.groupby(keys, sort=True):
        both_ok = (group["source_clean_prediction"] == group["label"]).to_numpy() & target_ok.loc[
            group["index"]
        ].to_numpy()
        kept = group.loc[both_ok]
        n = len(kept)
        asr = 100.0 * float((~kept["correct"].astype(bool)).sum()) / n if n else math.nan
        rows.append(
            (
                dataset,
                str(source_arch),
                str(source_technique),
                target_arch,
                target_technique,
                str(attack),
                float(eps),
                asr,
                n,
            )
        )
    return pd.DataFrame(rows, columns=TRANSFER_COLUMNS)


def finalize_transfer(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate transfer rows, fix dtypes and sort deterministically."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: [] for c in TRANSFER_COLUMNS}).astype(
            {"eps": "float64", "asr": "float64", "n": "int64"}
        )
    frame = pd.concat(frames, ignore_index=True)[TRANSFER_COLUMNS]
    frame = frame.astype({"eps": "float64", "asr": "float64", "n": "int64"})
    for col in TRANSFER_COLUMNS[:6]:
        frame[col] = frame[col].astype("str")
    order = ["dataset", "attack", "eps", "source_arch", "source_technique", "target_arch"]
    frame = frame.sort_values([*order, "target_technique"], kind="mergesort")
    return frame.reset_index(drop=True)
