# Training: one job per (dataset, architecture, base technique); CLAT fine-tuning ("X+clat")
# starts from the weights of X's run after its pretraining epochs, so X is trained once.


rule train:
    output:
        weights="models/{dataset}/{arch}/{technique}/model.safetensors",
        history="models/{dataset}/{arch}/{technique}/history.parquet",
        card="models/{dataset}/{arch}/{technique}/card.json",
    input:
        train="data/prepared/{dataset}/train.parquet",
        code=stage("train"),
    params:
        arch=lambda w: arch_base(w.arch),
        arch_config=lambda w: as_json(arch_options(w.arch)),
        technique_config=lambda w: as_json(config["techniques"][w.technique]),
        train_config=as_json(config["train"]),
        val_size=lambda w: dataset_params(w)["val_size"],
        seed=SEED,
        out_dir=lambda w, output: str(Path(output.weights).parent),
        # weights CLAT runs start from; a parameter, so adding such a run retrains X with it
        snapshots=lambda w: (
            f"--snapshot-epoch {SNAPSHOTS[w.technique]}" if w.technique in SNAPSHOTS else ""
        ),
    wildcard_constraints:
        technique=one_of(set(TRAINED_TECHNIQUES) - set(SNAPSHOT_TECHNIQUES)),
    threads: THREADS or 1
    # what a cluster job asks for (profiles/slurm); params.yaml resources.train overrides
    resources:
        gpu=config.get("resources", {}).get("train", {}).get("gpu", 1),
        mem_mb=config.get("resources", {}).get("train", {}).get("mem_mb", 8000),
        runtime=lambda w, attempt: attempt
        * config.get("resources", {}).get("train", {}).get("runtime", 120),
    # reused from SNAKEMAKE_OUTPUT_CACHE when a run with the same provenance was stored (--cache)
    cache: "omit-software"
    log:
        "logs/train/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.train --train {input.train} --dataset {wildcards.dataset}"
        " --arch {params.arch} --arch-name {wildcards.arch} --arch-config '{params.arch_config}'"
        " --technique {wildcards.technique} --technique-config '{params.technique_config}'"
        " --train-config '{params.train_config}' --val-size {params.val_size}"
        " --seed {params.seed} {params.snapshots} --threads {threads}"
        " --out-dir {params.out_dir} 2> {log}"


# The same training for a technique CLAT starts from before its last epoch: the snapshot it
# starts from is a declared output, so the output cache stores and restores it with the model.
use rule train as train_snapshot with:
    output:
        weights="models/{dataset}/{arch}/{technique}/model.safetensors",
        history="models/{dataset}/{arch}/{technique}/history.parquet",
        card="models/{dataset}/{arch}/{technique}/card.json",
        snapshot="models/{dataset}/{arch}/{technique}/pretrain_snapshot.safetensors",
    wildcard_constraints:
        technique=one_of(SNAPSHOT_TECHNIQUES),


rule clat:
    output:
        weights="models/{dataset}/{arch}/{technique}/model.safetensors",
        history="models/{dataset}/{arch}/{technique}/history.parquet",
        card="models/{dataset}/{arch}/{technique}/card.json",
        criticality="results/{dataset}/{arch}/{technique}/criticality.parquet",
    input:
        train="data/prepared/{dataset}/train.parquet",
        pretrained=lambda w: f"models/{w.dataset}/{w.arch}/{clat_base(w.technique)}/model.safetensors",
        snapshot=lambda w: (
            f"models/{w.dataset}/{w.arch}/{clat_base(w.technique)}/pretrain_snapshot.safetensors"
            if pretrain_epochs(w.technique) < config["train"]["epochs"]
            else []
        ),
        code=stage("clat"),
    params:
        arch=lambda w: arch_base(w.arch),
        base=lambda w: clat_base(w.technique),
        init_epoch=lambda w: pretrain_epochs(w.technique),
        clat_config=lambda w: as_json(
            {k: v for k, v in config["techniques"][w.technique].items() if k != "pretrain_epochs"}
        ),
        train_config=as_json(config["train"]),
        val_size=lambda w: dataset_params(w)["val_size"],
        seed=SEED,
        out_dir=lambda w, output: str(Path(output.weights).parent),
    wildcard_constraints:
        technique=one_of(CLAT_TECHNIQUES),
    threads: THREADS or 1
    resources:
        gpu=config.get("resources", {}).get("clat", {}).get("gpu", 1),
        mem_mb=config.get("resources", {}).get("clat", {}).get("mem_mb", 8000),
        runtime=lambda w, attempt: attempt
        * config.get("resources", {}).get("clat", {}).get("runtime", 120),
    cache: "omit-software"
    log:
        "logs/clat/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.clat --train {input.train} --dataset {wildcards.dataset}"
        " --arch {params.arch} --init-dir $(dirname {input.pretrained})"
        " --init-epoch {params.init_epoch} --pretrain-technique {params.base}"
        " --clat-config '{params.clat_config}' --train-config '{params.train_config}'"
        " --val-size {params.val_size} --seed {params.seed} --threads {threads}"
        " --out-dir {params.out_dir} --criticality-out {output.criticality} 2> {log}"
