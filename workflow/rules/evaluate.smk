# Evaluation of each trained model: clean, adversarial (one job per attack), transfer, natural,
# and the sanity probes. Per-example outcomes only; metrics are computed from them by the
# aggregate rule, and the evaluation sanity checks by the sanity rule.


rule evaluate:
    output:
        clean="results/{dataset}/{arch}/{technique}/clean.parquet",
        natural="results/{dataset}/{arch}/{technique}/natural.parquet",
        stability="results/{dataset}/{arch}/{technique}/stability.parquet",
        system="results/{dataset}/{arch}/{technique}/system.parquet",
    input:
        unpack(model_files),
        test="data/prepared/{dataset}/test.parquet",
        corrupted=expand("data/noisy/{{dataset}}/{corruption}.parquet", corruption=CORRUPTIONS),
        perturbed=expand(
            "data/noisy/{{dataset}}/perturbation/{perturbation}.parquet", perturbation=PERTURBATIONS
        ),
        system="data/noisy/{dataset}/system.parquet",
        code=stage("evaluate"),
    params:
        batch_size=config["evaluation"]["batch_size"],
    threads: THREADS or 1
    log:
        "logs/evaluate/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.launch evaluate --model-dir \"$(dirname {input.weights:q})\""
        " --table {output.clean:q} {input.test:q} --table {output.natural:q} {input.corrupted:q}"
        " --table {output.stability:q} {input.perturbed:q} --table {output.system:q} {input.system:q}"
        " --batch-size {params.batch_size:q} --threads {threads:q} --no-progress 2> {log:q}"


rule attack:
    output:
        "results/{dataset}/{arch}/{technique}/adversarial/{attack}.parquet",
    input:
        unpack(model_files),
        test="data/prepared/{dataset}/test.parquet",
        code=stage("attack"),
    params:
        attack_config=job_arg(attack_args, "attack_config", "dataset", "attack"),
        levels=job_arg(attack_args, "levels", "dataset", "attack"),
        points=job_arg(attack_args, "points", "dataset", "attack"),
        batch_size=config["evaluation"]["batch_size"],
        seed=SEED,
    threads: THREADS or 1
    resources:
        gpu=config.get("resources", {}).get("attack", {}).get("gpu", 1),
        mem_mb=config.get("resources", {}).get("attack", {}).get("mem_mb", 8000),
        runtime=lambda w, attempt: attempt
        * config.get("resources", {}).get("attack", {}).get("runtime", 120),
    log:
        "logs/attack/{dataset}/{arch}/{technique}/{attack}.log",
    shell:
        "python -m stages.launch attack --model-dir \"$(dirname {input.weights:q})\" --test {input.test:q}"
        " --attack {wildcards.attack:q} --attack-config {params.attack_config:q} {params.levels:q}"
        " --points {params.points:q} --seed {params.seed:q} --batch-size {params.batch_size:q}"
        " --threads {threads:q} --out {output:q} 2> {log:q}"


rule craft_transfer:
    output:
        "results/{dataset}/{arch}/{technique}/transfer_examples.safetensors",
    input:
        unpack(model_files),
        test="data/prepared/{dataset}/test.parquet",
        code=stage("craft_transfer"),
    params:
        # full-length iterations (no early_stop): see labconfig.jobs.craft_transfer_args
        attacks=job_arg(craft_transfer_args, "attacks", "dataset"),
        crafts=job_arg(craft_transfer_args, "crafts", "dataset"),
        points=job_arg(craft_transfer_args, "points", "dataset"),
        batch_size=config["evaluation"]["batch_size"],
        seed=SEED,
    threads: THREADS or 1
    resources:
        gpu=config.get("resources", {}).get("craft_transfer", {}).get("gpu", 1),
        mem_mb=config.get("resources", {}).get("craft_transfer", {}).get("mem_mb", 8000),
        runtime=lambda w, attempt: attempt
        * config.get("resources", {}).get("craft_transfer", {}).get("runtime", 120),
    log:
        "logs/craft_transfer/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.launch craft_transfer --model-dir \"$(dirname {input.weights:q})\" --test {input.test:q}"
        " --attacks {params.attacks:q} {params.crafts:q} --points {params.points:q}"
        " --seed {params.seed:q} --batch-size {params.batch_size:q} --threads {threads:q}"
        " --out {output:q} 2> {log:q}"


rule transfer:
    output:
        "results/{dataset}/{arch}/{technique}/transfer.parquet",
    input:
        unpack(model_files),
        sources=lambda w: expand(
            "results/{run}/transfer_examples.safetensors", run=dataset_runs(w.dataset)
        ),
        code=stage("transfer"),
    params:
        batch_size=config["evaluation"]["batch_size"],
    threads: THREADS or 1
    log:
        "logs/transfer/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.launch transfer --model-dir \"$(dirname {input.weights:q})\" --examples {input.sources:q}"
        " --batch-size {params.batch_size:q} --threads {threads:q} --out {output:q} 2> {log:q}"


rule probe:
    output:
        outcomes="results/{dataset}/{arch}/{technique}/probes.parquet",
        model="results/{dataset}/{arch}/{technique}/probes.json",
    input:
        unpack(model_files),
        test="data/prepared/{dataset}/test.parquet",
        code=stage("probe"),
    params:
        reference=job_arg(probe_args, "reference", "dataset"),
        settings=as_json(config["sanity"]),
        eps=job_arg(probe_args, "eps", "dataset"),
        batch_size=config["evaluation"]["batch_size"],
        seed=SEED,
    threads: THREADS or 1
    resources:
        gpu=config.get("resources", {}).get("probe", {}).get("gpu", 1),
        mem_mb=config.get("resources", {}).get("probe", {}).get("mem_mb", 8000),
        runtime=lambda w, attempt: attempt
        * config.get("resources", {}).get("probe", {}).get("runtime", 120),
    log:
        "logs/probe/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.launch probe --model-dir \"$(dirname {input.weights:q})\" --test {input.test:q}"
        " --reference {params.reference:q} --settings {params.settings:q} --eps {params.eps:q}"
        " --seed {params.seed:q} --batch-size {params.batch_size:q} --threads {threads:q}"
        " --out {output.outcomes:q} --out-model {output.model:q} 2> {log:q}"
