# Evaluation of each trained model: clean, adversarial, natural. Per-example outcomes only;
# metrics are computed from them by the aggregate rule.


rule evaluate_clean:
    output:
        "results/{dataset}/{arch}/{technique}/clean.parquet",
    input:
        unpack(model_files),
        test="data/prepared/{dataset}/test.parquet",
        code=stage("evaluate_clean"),
    params:
        batch_size=config["evaluation"]["batch_size"],
    threads: THREADS or 1
    log:
        "logs/evaluate_clean/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.evaluate_clean --model-dir $(dirname {input.weights}) --test {input.test}"
        " --batch-size {params.batch_size} --threads {threads} --out {output} 2> {log}"


rule attack:
    output:
        "results/{dataset}/{arch}/{technique}/adversarial.parquet",
    input:
        unpack(model_files),
        test="data/prepared/{dataset}/test.parquet",
        code=stage("attack"),
    params:
        attacks=as_json(config["attacks"]),
        eps=lambda w: " ".join(repr(float(e)) for e in dataset_params(w)["eps"]),
        batch_size=config["evaluation"]["batch_size"],
        seed=SEED,
    threads: THREADS or 1
    log:
        "logs/attack/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.attack --model-dir $(dirname {input.weights}) --test {input.test}"
        " --attacks '{params.attacks}' --eps {params.eps} --seed {params.seed}"
        " --batch-size {params.batch_size} --threads {threads} --out {output} 2> {log}"


rule evaluate_natural:
    output:
        "results/{dataset}/{arch}/{technique}/natural.parquet",
    input:
        unpack(model_files),
        noisy=expand("data/noisy/{{dataset}}/{corruption}.parquet", corruption=CORRUPTIONS),
        code=stage("evaluate_natural"),
    params:
        batch_size=config["evaluation"]["batch_size"],
    threads: THREADS or 1
    log:
        "logs/evaluate_natural/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.evaluate_natural --model-dir $(dirname {input.weights})"
        " --noisy {input.noisy} --batch-size {params.batch_size} --threads {threads}"
        " --out {output} 2> {log}"
