# Aggregation of per-example outcomes into the metrics table, figures and the HTML report.


rule aggregate:
    output:
        metrics="results/metrics.parquet",
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
        runs=run_options(CFG),
        attacks=attack_options(CFG),
        baseline=baseline_options(CFG),
    log:
        "logs/aggregate.log",
    shell:
        "python -m stages.launch aggregate --results-dir results --models-dir models {params.runs:q}"
        " {params.attacks:q} {params.baseline:q} --stability --system --out-metrics {output.metrics:q}"
        " --out-transfer {output.transfer:q} 2> {log:q}"


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
        runs=run_options(CFG),
        attacks=attack_options(CFG),
        settings=as_json(config["sanity"]),
        reference=SANITY_REFERENCE,
    log:
        "logs/sanity.log",
    shell:
        "python -m stages.launch sanity --results-dir results {params.runs:q} {params.attacks:q}"
        " --reference {params.reference:q} --settings {params.settings:q} --out {output:q} 2> {log:q}"


# DVC's metrics file: the headline numbers of every run (stages.headline), from the metrics
# table and the sanity checks, so `dvc metrics show` / `dvc exp show` read at a glance.
rule headline:
    output:
        "reports/metrics.json",
    input:
        metrics="results/metrics.parquet",
        sanity="results/sanity.parquet",
        code=stage("headline"),
    params:
        runs=run_options(CFG),
    log:
        "logs/headline.log",
    shell:
        "python -m stages.launch headline --metrics {input.metrics:q} --sanity {input.sanity:q}"
        " {params.runs:q} --out {output:q} 2> {log:q}"


# Paired comparisons of every two runs of one dataset and architecture (stages.compare).
rule compare:
    output:
        "results/comparisons.parquet",
    input:
        expand("results/{run}/{kind}.parquet", run=RUNS, kind=["clean", "natural"]),
        expand("results/{run}/adversarial/{attack}.parquet", run=RUNS, attack=ATTACKS),
        code=stage("compare"),
    params:
        runs=run_options(CFG),
        attacks=attack_options(CFG),
        # named CLAT variants (keys without the X+clat suffix) are run B of their comparisons
        clat=clat_variant_options(CFG),
        seed=SEED,
    log:
        "logs/compare.log",
    shell:
        "python -m stages.launch compare --results-dir results {params.runs:q} {params.attacks:q}"
        " {params.clat:q}"
        " --seed {params.seed:q} --out {output:q} 2> {log:q}"


# Inputs the figures and the report both read: tables, cards, histories (with those of the runs
# CLAT starts from, trained even when not in the grid) and CLAT's criticality tables.
CLAT_RUNS = [run for run in RUNS if CFG.pretrained(Path(run).name) is not None]
CLAT_BASE_HISTORIES = sorted(
    {
        f"models/{Path(run).parent}/{CFG.pretrained(Path(run).name)}/history.parquet"
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
REPORT_ARGS = report_options(CFG)


# Tidy plot data for `dvc plots show` / `dvc plots diff` (stages.plots; dvc.yaml's plots
# section). A directory: Snakemake empties it before the job, so no earlier grid's file stays.
rule plots:
    output:
        directory("reports/plots"),
    input:
        metrics="results/metrics.parquet",
        histories=REPORT_INPUTS["histories"],
        criticality=REPORT_INPUTS["criticality"],
        code=stage("plots"),
    params:
        runs=run_options(CFG),
    log:
        "logs/plots.log",
    shell:
        "python -m stages.launch plots --metrics {input.metrics:q} --models-dir models"
        " --results-dir results {params.runs:q} --out-dir {output:q} 2> {log:q}"


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
        names=FIGURE_NAMES,
    log:
        "logs/figures.log",
    shell:
        "python -m stages.launch figures --metrics {input.metrics:q} --transfer {input.transfer:q}"
        " --models-dir models --results-dir results {params.args:q} --names {params.names:q}"
        " --out-dir reports/figures 2> {log:q}"


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
        # what the resolution adjusted (e.g. a subset size above its split), for the footer
        notes=note_options(CFG),
    log:
        "logs/report.log",
    shell:
        "python -m stages.launch report --metrics {input.metrics:q} --transfer {input.transfer:q}"
        " --sanity {input.sanity:q} --comparisons {input.comparisons:q} --models-dir models"
        " --results-dir results {params.args:q}"
        " --test-tables {input.tests:q} --figures-dir reports/figures"
        " --git-revision \"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\""
        " --params-hash {params.params_hash:q} {params.notes:q} --out {output:q} 2> {log:q}"
