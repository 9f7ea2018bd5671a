# Aggregation of per-example outcomes into the metrics table, figures and the HTML report.


rule aggregate:
    output:
        metrics="results/metrics.parquet",
        json="reports/metrics.json",
    input:
        expand("results/{run}/{kind}.parquet", run=RUNS, kind=["clean", "adversarial", "natural"]),
        expand("models/{run}/{name}", run=RUNS, name=["card.json", "history.parquet"]),
        code=stage("aggregate"),
    params:
        runs=" ".join(f"--run {run}" for run in RUNS),
        baseline=baseline_args(),
    log:
        "logs/aggregate.log",
    shell:
        "python -m stages.aggregate --results-dir results --models-dir models {params.runs}"
        " {params.baseline} --out-metrics {output.metrics} --out-json {output.json} 2> {log}"


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
        metrics="results/metrics.parquet",
        cards=expand("models/{run}/card.json", run=RUNS),
        code=stage("figures"),
    log:
        "logs/figures.log",
    shell:
        "python -m stages.figures --metrics {input.metrics} --cards {input.cards}"
        " --out-dir reports/figures 2> {log}"


rule report:
    output:
        report("reports/index.html", caption="../report/index.rst", category="Report"),
    input:
        FIGURES,
        metrics="results/metrics.parquet",
        cards=expand("models/{run}/card.json", run=RUNS),
        code=stage("report"),
    params:
        params_hash=PARAMS_HASH,
    log:
        "logs/report.log",
    shell:
        "python -m stages.report --metrics {input.metrics} --cards {input.cards}"
        " --figures-dir reports/figures"
        " --git-revision $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
        " --params-hash {params.params_hash} --out {output} 2> {log}"
