"""Per-job start-up overhead of the default DAG: what every job pays before its first computation.

Each job of the Snakemake DAG starts ``python -m stages.<rule>``; before it computes anything it
pays the interpreter start and the imports of its stage (torch, pandas, ...). For every stage,
the median wall time of ``--repeats`` runs of ``python -c "import stages.<stage>"`` (a fresh
interpreter each time), times the number of jobs of that rule in the dry run of ``--params``
plus ``--config`` files, summed: the job time the DAG spends starting up. Run it at two
revisions (``git stash`` / ``git checkout``) for a before/after comparison. Prints, asserts
nothing.

    .venv/bin/python bench/job_startup.py [--repeats 3] [--config presets/smoke.yaml]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# rules whose job runs a stage of another name
STAGE_OF_RULE = {"train_snapshot": "train"}


def job_counts(configs: list[Path]) -> Counter:
    """Jobs per rule of a forced dry run (every job of the DAG)."""
    command = [str(Path(sys.executable).parent / "snakemake"), "-n", "--forceall", "--cores", "2"]
    for config in configs:
        command += ["--configfile", str(config)]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    stats = out[out.index("Job stats:") :]
    counts = Counter()
    for line in stats.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        if match.group(1) not in ("all", "total"):
            counts[match.group(1)] = int(match.group(2))
    return counts


def import_seconds(stage: str, repeats: int) -> float:
    """Median wall time of a fresh interpreter importing ``stages.<stage>``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import stages.{stage}"], cwd=ROOT, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", type=Path, action="append", default=[])
    args = parser.parse_args()
    counts = job_counts(args.config)
    total = 0.0
    print(f"{'rule':16s} {'jobs':>5s} {'start-up s':>10s} {'total s':>8s}")
    for rule, jobs in sorted(counts.items()):
        seconds = import_seconds(STAGE_OF_RULE.get(rule, rule), args.repeats)
        total += jobs * seconds
        print(f"{rule:16s} {jobs:5d} {seconds:10.2f} {jobs * seconds:8.1f}")
    jobs = sum(counts.values())
    print(f"{'all':16s} {jobs:5d} {total / jobs:10.2f} {total:8.1f}  (job seconds before compute)")


if __name__ == "__main__":
    main()
