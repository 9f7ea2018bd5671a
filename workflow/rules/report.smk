# Aggregation of per-example outcomes into the metrics table, figures and the HTML report.


rule aggregate:
    output:
        metrics="results/metrics.parquet",
        json="reports/metrics.json",
        transfer="results/transfer.parquet",
    input:
        expand(
            "results/{run}/{kind}.parquet",
            run=RUNS,
            kind=["clean", "natural", "transfer", "stability", "system"],
        ),
        expand("results/{run}/adversarial/{attack}.parquet", run=RUNS, attack=ATTACKS),
        expand("models/{run}/{name}", run=RUNS, name=["card.json", "history.parquet"]),
        code=stage("aggregate"),
    params:
        runs=" ".join(f"--run {run}" for run in RUNS),
        attacks=" ".join(f"--attack {name}" for name in ATTACKS),
        baseline=baseline_args(),
    log:
        "logs/aggregate.log",
    shell:
        "python -m stages.aggregate --results-dir results --models-dir models {params.runs}"
        " {params.attacks} {params.baseline} --stability --system --out-metrics {output.metrics}"
        " --out-json {output.json} --out-transfer {output.transfer} 2> {log}"


rule sanity:
    output:
        "results/sanity.parquet",
    input:
        expand(
            "results/{run}/{kind}.parquet", run=RUNS, kind=["clean", "probes", "transfer"]
        ),
        expand("results/{run}/probes.json", run=RUNS),
        expand("results/{run}/adversarial/{attack}.parquet", run=RUNS, attack=ATTACKS),
        code=stage("sanity"),
    params:
        runs=" ".join(f"--run {run}" for run in RUNS),
        attacks=" ".join(f"--attack {name}" for name in ATTACKS),
        settings=as_json(config["sanity"]),
        reference=SANITY_REFERENCE,
    log:
        "logs/sanity.log",
    shell:
        "python -m stages.sanity --results-dir results {params.runs} {params.attacks}"
        " --reference {params.reference} --settings '{params.settings}' --out {output} 2> {log}"


# Paired comparisons of every two runs of one dataset and architecture (stages.compare);
# arguments built inline from RUNS, ATTACKS and SEED.
rule compare:
    output:
        "results/comparisons.parquet",
    input:
        expand("results/{run}/{kind}.parquet", run=RUNS, kind=["clean", "natural"]),
        expand("results/{run}/adversarial/{attack}.parquet", run=RUNS, attack=ATTACKS),
        code=stage("compare"),
    params:
        runs=" ".join(f"--run {run}" for run in RUNS),
        attacks=" ".join(f"--attack {name}" for name in ATTACKS),
        seed=SEED,
    log:
        "logs/compare.log",
    shell:
        "python -m stages.compare --results-dir results {params.runs} {params.attacks}"
        " --seed {params.seed} --out {output} 2> {log}"


# Inputs the figures and the report both read: tables, cards, histories (with those of the runs
# CLAT starts from, trained even when not in the grid) and CLAT's criticality tables.
CLAT_RUNS = [run for run in RUNS if clat_base(Path(run).name) is not None]
CLAT_BASE_HISTORIES = sorted(
    {
        f"models/{Path(run).parent}/{clat_base(Path(run).name)}/history.parquet"
        for run in CLAT_RUNS
    }
    - {f"models/{run}/history.parquet" for run in RUNS}
)
REPORT_INPUTS = {
    "metrics": "results/metrics.parquet",
    "transfer": "results/transfer.parquet",
    "cards": expand("models/{run}/card.json", run=RUNS),
    "histories": expand("models/{run}/history.parquet", run=RUNS),
    "base_histories": CLAT_BASE_HISTORIES,
    "criticality": expand("results/{run}/criticality.parquet", run=CLAT_RUNS),
}
# --run and --attack-norm options of stages.figures and stages.report
REPORT_ARGS = " ".join(
    [f"--run {run}" for run in RUNS]
    + [f"--attack-norm {name}={attack_norm(name)}" for name in ATTACKS]
)


rule figures:
    output:
        [
            report(
                f"reports/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category="Figures",
            )
            for name in FIGURE_NAMES
        ],
    input:
        **REPORT_INPUTS,
        code=[stage("figures"), stage("report")],
    params:
        args=REPORT_ARGS,
        names=" ".join(FIGURE_NAMES),
    log:
        "logs/figures.log",
    shell:
        "python -m stages.figures --metrics {input.metrics} --transfer {input.transfer}"
        " --models-dir models --results-dir results {params.args} --names {params.names}"
        " --out-dir reports/figures 2> {log}"


rule report:
    output:
        report("reports/index.html", caption="../report/index.rst", category="Report"),
    input:
        **REPORT_INPUTS,
        figures=FIGURES,
        sanity="results/sanity.parquet",
        comparisons="results/comparisons.parquet",
        tests=expand("data/prepared/{dataset}/test.parquet", dataset=DATASETS),
        code=stage("report"),
    params:
        args=REPORT_ARGS,
        params_hash=PARAMS_HASH,
    log:
        "logs/report.log",
    shell:
        "python -m stages.report --metrics {input.metrics} --transfer {input.transfer}"
        " --sanity {input.sanity} --comparisons {input.comparisons} --models-dir models"
        " --results-dir results {params.args}"
        " --test-tables {input.tests} --figures-dir reports/figures"
        " --git-revision $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
        " --params-hash {params.params_hash} --out {output} 2> {log}"
