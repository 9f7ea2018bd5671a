# Training: one job per (dataset, architecture, base technique); CLAT fine-tuning ("X+clat")
# starts from the weights of X's run after its pretraining epochs, so X is trained once. A named
# variant (techniques: KEY: {technique: ..., seed: ..., pretrained: ...}) trains its registered
# technique with its own options and seed; a CLAT variant starts from its `pretrained` run.


rule train:
    output:
        weights="models/{dataset}/{arch}/{technique}/model.safetensors",
        history="models/{dataset}/{arch}/{technique}/history.parquet",
        card="models/{dataset}/{arch}/{technique}/card.json",
    input:
        train="data/prepared/{dataset}/train.parquet",
        code=stage("train"),
    params:
        arch=job_arg(train_args, "arch", "dataset", "arch", "technique"),
        arch_config=job_arg(train_args, "arch_config", "dataset", "arch", "technique"),
        technique=job_arg(train_args, "technique", "dataset", "arch", "technique"),
        variant=job_arg(train_args, "variant", "dataset", "arch", "technique"),
        technique_config=job_arg(train_args, "technique_config", "dataset", "arch", "technique"),
        train_config=job_arg(train_args, "train_config", "dataset", "arch", "technique"),
        val_size=job_arg(train_args, "val_size", "dataset", "arch", "technique"),
        seed=job_arg(train_args, "seed", "dataset", "arch", "technique"),
        out_dir=lambda w, output: str(Path(output.weights).parent),
        # weights CLAT runs start from; a parameter, so adding such a run retrains X with it
        snapshots=job_arg(train_args, "snapshots", "dataset", "arch", "technique"),
    wildcard_constraints:
        arch=one_of(TRAINED_ARCHS),
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
        "python -m stages.launch train --train {input.train:q} --dataset {wildcards.dataset:q}"
        " --arch {params.arch:q} --arch-name {wildcards.arch:q} --arch-config {params.arch_config:q}"
        " --technique {params.technique:q} {params.variant:q}"
        " --technique-config {params.technique_config:q}"
        " --train-config {params.train_config:q} --val-size {params.val_size:q}"
        " --seed {params.seed:q} {params.snapshots:q} --threads {threads:q}"
        " --out-dir {params.out_dir:q} 2> {log:q}"


# The same training for a technique CLAT starts from before its last epoch: the snapshot it
# starts from is a declared output, so the output cache stores and restores it with the model.
use rule train as train_snapshot with:
    output:
        weights="models/{dataset}/{arch}/{technique}/model.safetensors",
        history="models/{dataset}/{arch}/{technique}/history.parquet",
        card="models/{dataset}/{arch}/{technique}/card.json",
        snapshot="models/{dataset}/{arch}/{technique}/pretrain_snapshot.safetensors",
    wildcard_constraints:
        arch=one_of(TRAINED_ARCHS),
        technique=one_of(SNAPSHOT_TECHNIQUES),


rule clat:
    output:
        weights="models/{dataset}/{arch}/{technique}/model.safetensors",
        history="models/{dataset}/{arch}/{technique}/history.parquet",
        card="models/{dataset}/{arch}/{technique}/card.json",
        criticality="results/{dataset}/{arch}/{technique}/criticality.parquet",
    input:
        train="data/prepared/{dataset}/train.parquet",
        pretrained=job_arg(clat_inputs, "pretrained", "dataset", "arch", "technique"),
        snapshot=job_arg(clat_inputs, "snapshot", "dataset", "arch", "technique"),
        code=stage("clat"),
    params:
        arch=job_arg(clat_args, "arch", "dataset", "arch", "technique"),
        base=job_arg(clat_args, "base", "dataset", "arch", "technique"),
        init_epoch=job_arg(clat_args, "init_epoch", "dataset", "arch", "technique"),
        variant=job_arg(clat_args, "variant", "dataset", "arch", "technique"),
        clat_config=job_arg(clat_args, "clat_config", "dataset", "arch", "technique"),
        train_config=job_arg(clat_args, "train_config", "dataset", "arch", "technique"),
        val_size=job_arg(clat_args, "val_size", "dataset", "arch", "technique"),
        seed=job_arg(clat_args, "seed", "dataset", "arch", "technique"),
        out_dir=lambda w, output: str(Path(output.weights).parent),
    wildcard_constraints:
        arch=one_of(TRAINED_ARCHS),
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
        "python -m stages.launch clat --train {input.train:q} --dataset {wildcards.dataset:q}"
        " --arch {params.arch:q} --init-dir \"$(dirname {input.pretrained:q})\""
        " --init-epoch {params.init_epoch:q} --pretrain-technique {params.base:q} {params.variant:q}"
        " --clat-config {params.clat_config:q} --train-config {params.train_config:q}"
        " --val-size {params.val_size:q} --seed {params.seed:q} --threads {threads:q}"
        " --out-dir {params.out_dir:q} --criticality-out {output.criticality:q} 2> {log:q}"


# External models (external_models:, docs/external_models.md) are imported instead of trained:
# the file is checked (content, keys, shapes, class count) and the run's model folder written
# with what the evaluation, aggregate and report read. The file is an input: replacing it
# reruns the import and every evaluation of the model.
rule import_model:
    output:
        weights="models/{dataset}/{arch}/{technique}/model.safetensors",
        history="models/{dataset}/{arch}/{technique}/history.parquet",
        card="models/{dataset}/{arch}/{technique}/card.json",
    input:
        source=lambda w: external_source(CFG.config, w.arch),
        test="data/prepared/{dataset}/test.parquet",
        code=stage("import_model"),
    params:
        source=job_arg(import_args, "source", "dataset", "arch"),
        arch=job_arg(import_args, "arch", "dataset", "arch"),
        key_prefix=job_arg(import_args, "key_prefix", "dataset", "arch"),
        family=job_arg(import_args, "family", "dataset", "arch"),
        normalization=job_arg(import_args, "normalization", "dataset", "arch"),
        out_dir=lambda w, output: str(Path(output.card).parent),
    wildcard_constraints:
        arch=one_of(EXTERNAL_WEIGHTS),
    threads: THREADS or 1
    log:
        "logs/import_model/{dataset}/{arch}/{technique}.log",
    shell:
        "python -m stages.launch import_model --test {input.test:q} --dataset {wildcards.dataset:q}"
        " --arch-name {wildcards.arch:q} --technique {wildcards.technique:q}"
        " {params.source:q} {params.arch:q} {params.key_prefix:q} {params.family:q}"
        " --normalization {params.normalization:q} --threads {threads:q}"
        " --out-dir {params.out_dir:q} 2> {log:q}"


# The same import for a torch.export program: the run's folder holds program.pt2.
use rule import_model as import_program with:
    output:
        program="models/{dataset}/{arch}/{technique}/program.pt2",
        history="models/{dataset}/{arch}/{technique}/history.parquet",
        card="models/{dataset}/{arch}/{technique}/card.json",
    wildcard_constraints:
        arch=one_of(EXTERNAL_PROGRAMS),
