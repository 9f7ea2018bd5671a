"""Trained models from Snakemake's output cache against training them; prints figures only.

    .venv/bin/python bench/output_cache.py [--preset smoke|default] [--repeats 3]

In a fresh copy of the repository: prepares the data, then (1) trains every model of the grid
with `--cache train train_snapshot clat` into an empty cache (recomputation, plus moving the
files into the cache), (2) deletes models/ and runs the same command again (retrieval: the jobs
are restored as links to the cache entries). (2) is repeated and its median printed; (1) runs
once per repeat in its own cache. `snakemake -n` on the same targets gives the fixed cost of
building the DAG.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pipeline_helpers import REPO, copy_repo, merged_config, run  # noqa: E402
from workflow.labconfig import resolve  # noqa: E402


def model_targets(config: dict) -> list[str]:
    return [f"models/{run}/model.safetensors" for run in resolve(config).runs]


def timed(cmd: list[str], cwd: Path, cache: Path) -> float:
    start = time.perf_counter()
    env_cmd = ["env", f"SNAKEMAKE_OUTPUT_CACHE={cache}", *cmd]
    run(env_cmd, cwd, timeout=7200)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smoke", choices=["smoke", "default"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    files = [REPO / "params.yaml"]
    if args.preset == "smoke":
        files.append(REPO / "presets/smoke.yaml")
    config = merged_config(*files)
    targets = model_targets(config)
    with tempfile.TemporaryDirectory(prefix="robustlab-cache-bench-") as tmp:
        repo = copy_repo(Path(tmp) / "repo")
        (repo / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        data = sorted({f"data/prepared/{d}/train.parquet" for d in config["grid"]["datasets"]})
        run(["snakemake", "--cores", "2", *data], repo, timeout=3600)
        smk = [
            "snakemake",
            "--cores",
            "2",
            "--cache",
            "train",
            "train_snapshot",
            "clat",
            "--",
            *targets,
        ]
        dag = timed([*smk[:3], "-n", *smk[3:]], repo, Path(tmp) / "unused")
        computed, fetched = [], []
        for i in range(args.repeats):
            cache = Path(tmp) / f"cache{i}"
            cache.mkdir()
            shutil.rmtree(repo / "models", ignore_errors=True)
            computed.append(timed(smk, repo, cache))
            for _ in range(1 if i else args.repeats):
                shutil.rmtree(repo / "models")
                fetched.append(timed(smk, repo, cache))
        jobs = len(list((repo / "models").rglob("model.safetensors")))
    train, cached = statistics.median(computed), statistics.median(fetched)
    print(f"grid: {args.preset} ({len(targets)} runs, {jobs} models; train + clat jobs)")
    print(f"snakemake -n on the model targets:   {dag:7.1f} s")
    print(f"training (recomputation + store):    {train:7.1f} s  (median of {len(computed)})")
    print(f"restoring from the output cache:     {cached:7.1f} s  (median of {len(fetched)})")
    print(f"ratio:                               {train / cached:7.1f} x")


if __name__ == "__main__":
    main()
