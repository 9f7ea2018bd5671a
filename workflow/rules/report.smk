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
        sanity="results/sanity.parquet",
        transfer="results/transfer.parquet",
        cards=expand("models/{run}/card.json", run=RUNS),
        code=stage("report"),
    params:
        params_hash=PARAMS_HASH,
    log:
        "logs/report.log",
    shell:
        "python -m stages.report --metrics {input.metrics} --cards {input.cards}"
        " --sanity {input.sanity} --transfer {input.transfer}"
        " --figures-dir reports/figures"
        " --git-revision $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
        " --params-hash {params.params_hash} --out {output} 2> {log}"
