"""Per-job start-up overhead of the default DAG: what every job pays before its first computation.

Each job of the Snakemake DAG runs ``python -m stages.launch <stage> ...``. Started cold (its own
interpreter, ``ROBUSTLAB_WARM_START=0`` or a SLURM job) it pays the interpreter start and the
imports of its stage (torch, pandas, ...); started warm it is forked from the run's stage server
(stages/server.py), which imported them once. For every stage, the median wall time of
``--repeats`` runs of ``python -m stages.launch <stage> --help`` (the imports, argument parsing
and exit, no computation), cold and warm, times the number of jobs of that rule in the dry run of
params.yaml plus ``--config`` files, summed: the job time the DAG spends starting up. The
server's own start (its imports, once per run) is printed apart. Prints, asserts nothing.

    .venv/bin/python bench/job_startup.py [--repeats 3] [--config presets/smoke.yaml]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # stages.server, when run as a script
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


def job_seconds(stage: str, repeats: int, env: dict[str, str]) -> float:
    """Median wall time of ``python -m stages.launch <stage> --help`` in ``env``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "stages.launch", stage, "--help"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def warm_server() -> tuple[subprocess.Popen, dict[str, str], float]:
    """A running stage server, the environment that uses it and the seconds until it served."""
    from stages import server

    start = time.perf_counter()
    started = server.spawn(1, cwd=ROOT)
    if started is None:
        raise SystemExit("the stage server did not start")
    proc, address = started
    env = {**os.environ, server.ADDRESS_VAR: str(address)}
    job_seconds("headline", 1, env)  # the first job waits for the server's imports
    return proc, env, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", type=Path, action="append", default=[])
    args = parser.parse_args()
    from stages import server

    counts = job_counts(args.config)
    cold_env = {**os.environ, server.SWITCH_VAR: "0"}
    cold_env.pop(server.ADDRESS_VAR, None)
    proc, warm_env, served = warm_server()
    totals = {"cold": 0.0, "warm": 0.0}
    header = ("rule", "jobs", "cold s", "warm s", "cold total", "warm total")
    print("{:16s} {:>5s} {:>7s} {:>7s} {:>10s} {:>10s}".format(*header))
    try:
        for rule, jobs in sorted(counts.items()):
            stage = STAGE_OF_RULE.get(rule, rule)
            cold = job_seconds(stage, args.repeats, cold_env)
            warm = job_seconds(stage, args.repeats, warm_env)
            totals["cold"] += jobs * cold
            totals["warm"] += jobs * warm
            cells = (rule, jobs, cold, warm, jobs * cold, jobs * warm)
            print("{:16s} {:5d} {:7.2f} {:7.3f} {:10.1f} {:10.1f}".format(*cells))
    finally:
        server.terminate(proc)
    jobs = sum(counts.values())
    cold, warm = totals["cold"], totals["warm"]
    print(f"{'all':16s} {jobs:5d} {cold / jobs:7.2f} {warm / jobs:7.3f} {cold:10.1f} {warm:10.1f}")
    print(f"job seconds before compute: {cold:.1f} cold, {warm:.1f} warm + {served:.1f} for the")
    print("server's start (once per run, while the first jobs queue)")


if __name__ == "__main__":
    main()
