# Training: one job per (dataset, architecture, technique).


rule train:
    output:
        weights="models/{dataset}/{arch}/{technique}/model.safetensors",
        history="models/{dataset}/{arch}/{technique}/history.parquet",
        card="models/{dataset}/{arch}/{technique}/card.json",
    input:
        train="data/prepared/{dataset}/train.parquet",
        code=stage("train"),
    params:
        arch_config=lambda w: as_json(config["architectures"][w.arch]),
        technique_config=lambda w: as_json(config["techniques"][w.technique]),
        train_config=as_json(config["train"]),
        val_size=lambda w: dataset_params(w)["val_size"],
        seed=SEED,
        out_dir=lambda w, output: str(Path(output.weights).parent),
    threads: THREADS or 1
    log:
        "logs/train/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.train --train {input.train} --dataset {wildcards.dataset}"
        " --arch {wildcards.arch} --arch-config '{params.arch_config}'"
        " --technique {wildcards.technique} --technique-config '{params.technique_config}'"
        " --train-config '{params.train_config}' --val-size {params.val_size}"
        " --seed {params.seed} --threads {threads} --out-dir {params.out_dir} 2> {log}"
