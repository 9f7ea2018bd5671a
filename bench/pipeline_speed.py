"""Wall-clock figures of the pipeline on this machine; prints them, asserts nothing.

Targets (2-core CPU, after set-up): presets/smoke.yaml end to end <= 2 min; the default
params.yaml benchmark end to end <= 15 min; a no-op `snakemake` or `dvc repro` <= 3 s.

    .venv/bin/python bench/pipeline_speed.py [--skip-default] [--repeats 3]

Each figure runs in a fresh temporary copy of the repository (git + DVC initialised).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pipeline_helpers import copy_repo, git_init, run  # noqa: E402


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    run(cmd, cwd, timeout=3600)
    return time.perf_counter() - start


def no_op_figures(repo: Path, repeats: int, extra: list[str]) -> tuple[float, float]:
    smk = [timed(["snakemake", "--cores", "2", *extra], repo) for _ in range(repeats)]
    dvc = [timed(["dvc", "repro"], repo) for _ in range(repeats)] if not extra else [float("nan")]
    return statistics.median(smk), statistics.median(dvc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-default", action="store_true", help="only the smoke preset")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the no-op timings")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        smoke = copy_repo(Path(tmp) / "smoke")
        extra = ["--configfile", "presets/smoke.yaml"]
        seconds = timed(["snakemake", "--cores", "2", *extra], smoke)
        print(f"smoke preset end to end (snakemake, 2 cores): {seconds:7.1f} s   target <= 120 s")
        smk, _ = no_op_figures(smoke, args.repeats, extra)
        print(f"smoke no-op snakemake (median of {args.repeats}):  {smk:7.2f} s   target <= 3 s")

        if args.skip_default:
            return
        default = copy_repo(Path(tmp) / "default")
        git_init(default)
        seconds = timed(["dvc", "repro"], default)
        print(f"default params.yaml end to end (dvc repro):  {seconds:7.1f} s   target <= 900 s")
        smk, dvc = no_op_figures(default, args.repeats, [])
        print(f"default no-op snakemake (median of {args.repeats}):   {smk:7.2f} s   target <= 3 s")
        print(f"default no-op dvc repro (median of {args.repeats}):   {dvc:7.2f} s   target <= 3 s")
        print(run(["python", "-c", _SUMMARY], default).stdout)


_SUMMARY = """
import pandas as pd
m = pd.read_parquet("results/metrics.parquet")
keep = m[(m.family == "clean") | ((m.metric == "robust_accuracy") & (m.noise == "pgd_linf"))
         | ((m.noise == "imagenet_c") & (m.metric == "accuracy"))]
keep = keep.assign(level=keep.level.fillna(0.0))  # clean and corruption means: level 0
print(keep.pivot_table(index=["arch", "technique"], columns=["noise", "level"], values="value",
                       ).round(1).to_string())
"""

if __name__ == "__main__":
    main()
