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
        code=[stage("evaluate"), stage("evaluate_images")],
    params:
        batch_size=config["evaluation"]["batch_size"],
    threads: THREADS or 1
    log:
        "logs/evaluate/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.evaluate --model-dir $(dirname {input.weights})"
        " --table {output.clean} {input.test} --table {output.natural} {input.corrupted}"
        " --table {output.stability} {input.perturbed} --table {output.system} {input.system}"
        " --batch-size {params.batch_size} --threads {threads} --no-progress 2> {log}"


rule attack:
    output:
        "results/{dataset}/{arch}/{technique}/adversarial/{attack}.parquet",
    input:
        unpack(model_files),
        test="data/prepared/{dataset}/test.parquet",
        code=stage("attack"),
    params:
        attack_config=lambda w: as_json(attack_config(w.attack)),
        levels=lambda w: level_args(attack_levels(w.dataset, w.attack)),
        points=lambda w: config["attacks"][w.attack].get("points") or "all",
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
        "python -m stages.attack --model-dir $(dirname {input.weights}) --test {input.test}"
        " --attack {wildcards.attack} --attack-config '{params.attack_config}' {params.levels}"
        " --points {params.points} --seed {params.seed} --batch-size {params.batch_size}"
        " --threads {threads} --out {output} 2> {log}"


rule craft_transfer:
    output:
        "results/{dataset}/{arch}/{technique}/transfer_examples.safetensors",
    input:
        unpack(model_files),
        test="data/prepared/{dataset}/test.parquet",
        code=stage("craft_transfer"),
    params:
        # full-length iterations: stopping at the first iterate that fools the source would
        # make weaker transfer examples
        attacks=lambda w: as_json(
            {
                name: {k: v for k, v in attack_config(name).items() if k != "early_stop"}
                for name in config["transfer"]["attacks"]
            }
        ),
        crafts=lambda w: " ".join(
            f"--craft {name}:{level}:{eps!r}" for name, level, eps in transfer_pairs(w.dataset)
        ),
        points=config["transfer"].get("points") or "all",
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
        "python -m stages.craft_transfer --model-dir $(dirname {input.weights}) --test {input.test}"
        " --attacks '{params.attacks}' {params.crafts} --points {params.points}"
        " --seed {params.seed} --batch-size {params.batch_size} --threads {threads}"
        " --out {output} 2> {log}"


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
        "python -m stages.transfer --model-dir $(dirname {input.weights}) --examples {input.sources}"
        " --batch-size {params.batch_size} --threads {threads} --out {output} 2> {log}"


rule probe:
    output:
        outcomes="results/{dataset}/{arch}/{technique}/probes.parquet",
        model="results/{dataset}/{arch}/{technique}/probes.json",
    input:
        unpack(model_files),
        test="data/prepared/{dataset}/test.parquet",
        code=stage("probe"),
    params:
        reference=lambda w: as_json(attack_config(SANITY_REFERENCE)),
        settings=as_json(config["sanity"]),
        eps=lambda w: " ".join(repr(float(e)) for e in dataset_params(w)["eps"]),
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
        "python -m stages.probe --model-dir $(dirname {input.weights}) --test {input.test}"
        " --reference '{params.reference}' --settings '{params.settings}' --eps {params.eps}"
        " --seed {params.seed} --batch-size {params.batch_size} --threads {threads}"
        " --out {output.outcomes} --out-model {output.model} 2> {log}"
