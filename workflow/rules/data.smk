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
        points=points_option(config["corruptions"].get("points")),
        seed=SEED,
    log:
        "logs/corrupt/{dataset}/{corruption}.log",
    shell:
        "python -m stages.corrupt --input {input.test} --corruption {wildcards.corruption}"
        " --severities {params.severities} --seed {params.seed} {params.points}"
        " --no-progress --out {output} 2> {log}"


rule perturb:
    output:
        "data/noisy/{dataset}/perturbation/{perturbation}.parquet",
    input:
        test="data/prepared/{dataset}/test.parquet",
        code=stage("perturb"),
    params:
        length=config["perturbations"]["length"],
        points=lambda w: points_option(config["perturbations"].get("points")),
        seed=SEED,
    log:
        "logs/perturb/{dataset}/{perturbation}.log",
    shell:
        "python -m stages.perturb --input {input.test} --perturbation {wildcards.perturbation}"
        " --length {params.length} --seed {params.seed} {params.points} --out {output} 2> {log}"


rule system_noise:
    output:
        "data/noisy/{dataset}/system.parquet",
    input:
        test="data/prepared/{dataset}/test.parquet",
        code=stage("system_noise"),
    params:
        stored_size=system_stored_size(),
        format=config["system_noise"]["format"],
        quality=config["system_noise"]["quality"],
        grid=config["system_noise"]["grid"],
        points=lambda w: points_option(config["system_noise"].get("points")),
        seed=SEED,
    log:
        "logs/system_noise/{dataset}.log",
    shell:
        "python -m stages.system_noise --input {input.test} {params.stored_size}"
        " --format {params.format} --quality {params.quality} --grid {params.grid}"
        " --seed {params.seed} {params.points} --out {output} 2> {log}"
