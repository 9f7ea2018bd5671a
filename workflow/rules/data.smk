# Data: prepared subsets of each dataset and their corrupted variants.


rule prepare:
    output:
        "data/prepared/{dataset}/{split}.parquet",
    input:
        code=stage("prepare"),
    params:
        size=lambda w: dataset_params(w)[f"{w.split}_size"] or "all",
        seed=lambda w: dataset_params(w)["subset_seed"],
        source=lambda w: (
            f"--source-dir {dataset_params(w)['source_dir']}" if dataset_params(w).get("source_dir") else ""
        ),
        download=lambda w: "--download" if dataset_params(w).get("download") else "",
    log:
        "logs/prepare/{dataset}/{split}.log",
    shell:
        "python -m stages.prepare --dataset {wildcards.dataset} --split {wildcards.split}"
        " --size {params.size} --seed {params.seed} {params.source} {params.download}"
        " --out {output} 2> {log}"


rule corrupt:
    output:
        "data/noisy/{dataset}/{corruption}.parquet",
    input:
        test="data/prepared/{dataset}/test.parquet",
        code=stage("corrupt"),
    params:
        severities=" ".join(str(s) for s in config["corruptions"]["severities"]),
        seed=SEED,
    log:
        "logs/corrupt/{dataset}/{corruption}.log",
    shell:
        "python -m stages.corrupt --input {input.test} --corruption {wildcards.corruption}"
        " --severities {params.severities} --seed {params.seed} --out {output} 2> {log}"
