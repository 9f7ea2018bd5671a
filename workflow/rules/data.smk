# Data: prepared subsets of each dataset and their corrupted variants.


rule prepare:
    output:
        "data/prepared/{dataset}/{split}.parquet",
    input:
        code=stage("prepare"),
    params:
        size=job_arg(prepare_args, "size", "dataset", "split"),
        seed=job_arg(prepare_args, "seed", "dataset", "split"),
        source=job_arg(prepare_args, "source", "dataset", "split"),
        download=job_arg(prepare_args, "download", "dataset", "split"),
        kind=job_arg(prepare_args, "kind", "dataset", "split"),
        # a folder dataset's listing: a changed folder reruns the job (not passed to the stage)
        fingerprint=job_arg(prepare_args, "fingerprint", "dataset", "split"),
    log:
        "logs/prepare/{dataset}/{split}.log",
    shell:
        "python -m stages.launch prepare --dataset {wildcards.dataset:q} --split {wildcards.split:q}"
        " --size {params.size:q} --seed {params.seed:q} {params.source:q} {params.download:q}"
        " {params.kind:q} --out {output:q} 2> {log:q}"


rule corrupt:
    output:
        "data/noisy/{dataset}/{corruption}.parquet",
    input:
        test="data/prepared/{dataset}/test.parquet",
        code=stage("corrupt"),
    params:
        severities=corrupt_args(CFG)["severities"],
        points=corrupt_args(CFG)["points"],
        seed=SEED,
    log:
        "logs/corrupt/{dataset}/{corruption}.log",
    shell:
        "python -m stages.launch corrupt --input {input.test:q} --corruption {wildcards.corruption:q}"
        " --severities {params.severities:q} --seed {params.seed:q} {params.points:q}"
        " --no-progress --out {output:q} 2> {log:q}"


rule perturb:
    output:
        "data/noisy/{dataset}/perturbation/{perturbation}.parquet",
    input:
        test="data/prepared/{dataset}/test.parquet",
        code=stage("perturb"),
    params:
        length=perturb_args(CFG)["length"],
        points=perturb_args(CFG)["points"],
        seed=SEED,
    log:
        "logs/perturb/{dataset}/{perturbation}.log",
    shell:
        "python -m stages.launch perturb --input {input.test:q} --perturbation {wildcards.perturbation:q}"
        " --length {params.length:q} --seed {params.seed:q} {params.points:q} --out {output:q} 2> {log:q}"


rule system_noise:
    output:
        "data/noisy/{dataset}/system.parquet",
    input:
        test="data/prepared/{dataset}/test.parquet",
        code=stage("system_noise"),
    params:
        stored_size=system_noise_args(CFG)["stored_size"],
        format=system_noise_args(CFG)["format"],
        quality=system_noise_args(CFG)["quality"],
        grid=system_noise_args(CFG)["grid"],
        points=system_noise_args(CFG)["points"],
        seed=SEED,
    log:
        "logs/system_noise/{dataset}.log",
    shell:
        "python -m stages.launch system_noise --input {input.test:q} {params.stored_size:q}"
        " --format {params.format:q} --quality {params.quality:q} --grid {params.grid:q}"
        " --seed {params.seed:q} {params.points:q} --out {output:q} 2> {log:q}"
