"""params.yaml checking, resolution and job arguments (workflow/labconfig), in-process."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from tests.pipeline_helpers import REPO
from workflow.labconfig import (
    ConfigError,
    attack_args,
    clat_args,
    clat_inputs,
    clat_variant_options,
    craft_transfer_args,
    load_config,
    note_options,
    params_hash,
    prepare_args,
    probe_args,
    resolve,
    train_args,
)
from workflow.labconfig import names as lc_names

PARAMS = REPO / "params.yaml"
PRESETS = sorted((REPO / "presets").glob("*.yaml"))
CIFAR_LARGEST = 0.03137255  # 8/255, the last of params.yaml's datasets.cifar10.eps


@pytest.fixture(scope="module")
def default() -> dict:
    return load_config(PARAMS)


def edited(config: dict, path: str, value) -> dict:
    """A copy of ``config`` with the dotted key ``path`` set to ``value``."""
    out = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[last] = value
    return out


def problems(config: dict) -> str:
    with pytest.raises(ConfigError) as info:
        resolve(config)
    return str(info.value)


# --- names: the torch-free lists equal the library's registries -------------------------------


def test_names_mirror_the_registries():
    from robustlab.data.registry import DATASET_KINDS, DATASETS
    from robustlab.models import ARCHITECTURES
    from robustlab.noise.adversarial import ATTACKS
    from robustlab.noise.natural import corruption_names
    from robustlab.noise.stability import perturbation_names
    from robustlab.training.techniques import TECHNIQUES

    assert list(lc_names.DATASETS) == DATASETS.names()
    assert list(lc_names.DATASET_KINDS) == DATASET_KINDS.names()
    assert list(lc_names.ARCHITECTURES) == ARCHITECTURES.names()
    assert list(lc_names.BASE_TECHNIQUES) == TECHNIQUES.names()
    assert list(lc_names.ATTACKS) == ATTACKS.names()
    assert list(lc_names.CORRUPTIONS) == sorted(corruption_names())
    assert list(lc_names.PERTURBATIONS) == sorted(perturbation_names())
    for name in ATTACKS.names():
        norm = lc_names.ATTACK_NORMS[name]
        if name in ("autoattack", "square"):
            assert norm is None  # their norm is a parameter (default Linf)
        else:
            assert norm == ATTACKS.get(name)().norm, name


def test_resolving_params_yaml_imports_neither_torch_nor_snakemake():
    code = (
        "import sys; from workflow.labconfig import load_config, resolve, train_args;"
        "cfg = resolve(load_config('params.yaml'));"
        "train_args(cfg, 'fashion_mnist', 'wrn_10_2', 'pgd_at');"
        "print(sorted(m for m in ('torch', 'snakemake') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# --- resolution ---------------------------------------------------------------------------------


def test_resolve_never_changes_its_input(default):
    config = load_config(PARAMS, REPO / "presets/smoke.yaml")
    config["sweeps"] = {"s": {"space": {"base": "wrn"}, "count": 1, "seed": 0}}
    before = copy.deepcopy(config)
    cfg = resolve(config, sample=lambda space, count, seed: {"wrn_s0": {"arch": "wrn"}})
    assert config == before
    # the resolved copy: the preset's null attack dropped, the sweep's variant in the grid
    assert "cw_linf" in config["attacks"] and "cw_linf" not in cfg["attacks"]
    assert cfg.architectures == ["small_cnn", "preact_resnet18", "wrn_s0"]


@pytest.mark.parametrize("preset", [None, *PRESETS], ids=lambda p: p.name if p else "params.yaml")
def test_params_yaml_and_every_preset_resolve(preset):
    paths = [PARAMS] + ([preset] if preset else [])
    cfg = resolve(load_config(*paths))
    grid = cfg["grid"]
    assert len(cfg.runs) == len(grid["datasets"]) * len(grid["architectures"]) * len(
        grid["techniques"]
    )
    assert cfg.notes == ()


def test_default_grid_runs_and_snapshots(default):
    cfg = resolve(default)
    assert cfg.runs[:3] == [
        "fashion_mnist/robust_resnet_tiny/standard",
        "fashion_mnist/robust_resnet_tiny/pgd_at",
        "fashion_mnist/robust_resnet_tiny/pgd_at+clat",
    ]
    assert cfg.trained_techniques == ["pgd_at", "standard"]
    # pgd_at+clat: pretrain_epochs null = train.epochs 3 - CLAT epochs 1 = 2 < 3: a snapshot
    assert cfg.snapshots == {"pgd_at": 2}


# --- training budgets per dataset ----------------------------------------------------------------


def test_default_train_and_clat_jobs_keep_their_arguments(default):
    """fashion_mnist's largest eps is 0.1: the absolute 0.1 params.yaml had before `largest`."""
    cfg = resolve(default)
    args = train_args(cfg, "fashion_mnist", "wrn_10_2", "pgd_at")
    assert args["technique_config"] == '{"eps":0.1,"random_start":true,"step_size":0.5,"steps":3}'
    assert json.loads(args["train_config"])["val_pgd_eps"] == 0.1
    assert args["snapshots"] == ["--snapshot-epoch", "2"]
    assert args["arch"] == "wrn_10_2" and args["arch_config"] == "{}" and args["val_size"] == 300
    clat = clat_args(cfg, "fashion_mnist", "wrn_10_2", "pgd_at+clat")
    assert json.loads(clat["clat_config"])["eps"] == 0.1
    assert "pretrain_epochs" not in json.loads(clat["clat_config"])
    assert (clat["base"], clat["init_epoch"]) == ("pgd_at", 2)


def test_mixed_grid_trains_each_dataset_at_its_own_budget(default):
    cfg = resolve(edited(default, "grid.datasets", ["fashion_mnist", "cifar10"]))
    budgets = {}
    for dataset in ("fashion_mnist", "cifar10"):
        train = train_args(cfg, dataset, "wrn_10_2", "pgd_at")
        clat = clat_args(cfg, dataset, "wrn_10_2", "pgd_at+clat")
        budgets[dataset] = (
            json.loads(train["technique_config"])["eps"],
            json.loads(train["train_config"])["val_pgd_eps"],
            json.loads(clat["clat_config"])["eps"],
            json.loads(clat["train_config"])["val_pgd_eps"],
        )
    assert budgets == {"fashion_mnist": (0.1,) * 4, "cifar10": (CIFAR_LARGEST,) * 4}


def test_a_budget_level_picks_each_datasets_nth_eps(default):
    config = edited(default, "grid.datasets", ["fashion_mnist", "cifar10"])
    config = edited(config, "techniques.pgd_at.eps", {"level": 2})
    cfg = resolve(config)
    eps = {
        d: json.loads(train_args(cfg, d, "wrn_10_2", "pgd_at")["technique_config"])["eps"]
        for d in ("fashion_mnist", "cifar10")
    }
    # the second of [0.02, 0.05, 0.1] and of [0.00196078, 0.00784314, 0.03137255]
    assert eps == {"fashion_mnist": 0.05, "cifar10": 0.00784314}


def test_a_budget_level_beyond_a_datasets_eps_list_is_named(default):
    text = problems(edited(default, "techniques.pgd_at.eps", {"level": 4}))
    assert "techniques.pgd_at.eps: level 4 is outside 1..3" in text
    assert "datasets.fashion_mnist.eps" in text


def test_an_absolute_budget_on_datasets_with_different_eps_lists_is_refused(default):
    config = edited(default, "grid.datasets", ["fashion_mnist", "cifar10"])
    text = problems(edited(config, "train.val_pgd_eps", 0.1))
    assert "train.val_pgd_eps: 0.1 is one budget for every dataset" in text
    assert "`largest`" in text and "{level: N}" in text
    # the other direction: one dataset, or datasets whose eps lists agree, take a number
    assert resolve(edited(default, "train.val_pgd_eps", 0.07))
    same = edited(default, "grid.datasets", ["cifar10", "cifar100"])
    cfg = resolve(edited(same, "techniques.pgd_at.eps", 0.02))
    assert json.loads(train_args(cfg, "cifar100", "wrn_10_2", "pgd_at")["technique_config"])[
        "eps"
    ] == pytest.approx(0.02)


def test_a_budget_that_is_neither_level_nor_number_lists_what_is_allowed(default):
    text = problems(edited(default, "techniques.trades.eps", "huge"))
    assert "techniques.trades.eps: 'huge' is not allowed; allowed: largest" in text


# --- bad input fails before any job, naming the key and what is allowed --------------------------

BAD_PARAMS = [
    (
        "unknown architecture",
        "grid.architectures",
        ["small_cnn", "resnet_9000"],
        ["grid.architectures.1", "resnet_9000", "preact_resnet18"],
    ),
    (
        "unknown technique",
        "grid.techniques",
        ["standard", "magic_at"],
        ["grid.techniques.1", "magic_at", "pgd_at"],
    ),
    (
        "unknown attack",
        "attacks",
        {"fgsm": {}, "deepfool": {}},
        ["attacks", "deepfool", "pgd_linf"],
    ),
    (
        "unknown corruption",
        "corruptions.names",
        ["gaussian_noise", "fog_of_war"],
        ["corruptions.names.1", "fog_of_war", "defocus_blur"],
    ),
    (
        "negative eps",
        "datasets.fashion_mnist.eps",
        [-0.1, 0.05],
        ["datasets.fashion_mnist.eps.0", "-0.1", "minimum"],
    ),
    (
        "eps above one",
        "datasets.fashion_mnist.eps",
        [0.05, 8.0],
        ["datasets.fashion_mnist.eps.1", "8.0", "maximum"],
    ),
    ("wrong type", "train.epochs", "five", ["train.epochs", "'five'", "integer"]),
    ("unknown key", "train.epochz", 3, ["train", "epochz", "allowed keys"]),
    (
        "L2 budgets for fewer levels",
        "datasets.fashion_mnist.eps_l2",
        [0.5, 1.0],
        ["datasets.fashion_mnist.eps_l2", "2 values but eps has 3"],
    ),
    (
        "level outside the eps list",
        "attacks.fgsm",
        {"levels": [1, 4]},
        ["attacks.fgsm.levels", "outside 1..3"],
    ),
    (
        "transfer attack not configured",
        "transfer.attacks",
        ["fgsm", "mim"],
        ["transfer.attacks.1", "'mim' is not configured under attacks:"],
    ),
    (
        "unknown dataset",
        "grid.datasets",
        ["fashion_mnist", "svhn"],
        ["grid.datasets.1", "svhn", "cifar10"],
    ),
    (
        "empty architecture list",
        "grid.architectures",
        [],
        ["grid.architectures: the list is empty", "a sweep's variants"],
    ),
    ("empty technique list", "grid.techniques", [], ["grid.techniques: the list is empty"]),
    (
        "validation subset as large as the training subset",
        "datasets.fashion_mnist.val_size",
        3000,
        ["datasets.fashion_mnist.val_size: 3000 must be smaller than the training subset (3000"],
    ),
    (
        "CLAT pretraining longer than training",
        "techniques.pgd_at+clat.pretrain_epochs",
        4,
        ["techniques.pgd_at+clat.pretrain_epochs: 4 is outside 1..train.epochs (3)"],
    ),
    (
        "sanity reference attack switched off",
        "attacks.pgd_linf",
        None,
        ["attacks: pgd_linf is missing; the evaluation sanity checks compare against it"],
    ),
]


@pytest.mark.parametrize("case", BAD_PARAMS, ids=[c[0] for c in BAD_PARAMS])
def test_bad_params_are_refused_naming_the_key(case, default):
    _, path, value, expected = case
    text = problems(edited(default, path, value))
    for fragment in expected:
        assert fragment in text, f"{fragment!r} missing from:\n{text}"


def test_every_problem_is_listed_at_once(default):
    config = edited(default, "datasets.fashion_mnist.val_size", 5000)
    config = edited(config, "techniques.pgd_at.eps", {"level": 9})
    text = problems(config)
    assert "val_size: 5000" in text and "level 9" in text


def test_l2_attack_without_l2_budgets_is_named(default):
    config = edited(default, "attacks.pgd_l2", {"steps": 5})
    del config["datasets"]["fashion_mnist"]["eps_l2"]
    assert "datasets.fashion_mnist.eps_l2: missing; attacks.pgd_l2 is an l2 attack" in problems(
        config
    )


def test_dataset_in_grid_without_its_entry_is_named(default):
    config = edited(default, "grid.datasets", ["fashion_mnist", "cifar10"])
    del config["datasets"]["cifar10"]
    assert "grid.datasets: 'cifar10' has no entry under datasets:" in problems(config)


def test_clat_runs_of_one_base_need_one_snapshot_epoch(default):
    config = edited(default, "grid.techniques", ["pgd_at+clat", "standard+clat"])
    config = edited(config, "train.epochs", 5)
    config["techniques"]["standard+clat"] = {"epochs": 1}  # pretrains standard 4 epochs
    # pgd_at+clat's epochs: null is 5 // 2 = 2 CLAT epochs after 3 of pgd_at
    assert resolve(config).snapshots == {"pgd_at": 3, "standard": 4}
    config["grid"]["techniques"] = ["pgd_at+clat", "trades+clat"]
    config["techniques"]["trades+clat"] = {"pretrain_epochs": 2}
    assert resolve(config).snapshots == {"pgd_at": 3, "trades": 2}


def test_clat_epochs_default_to_half_the_training_budget(default):
    from workflow.labconfig.jobs import clat_config
    from workflow.labconfig.resolve import clat_epochs, pretrain_epochs

    for epochs, clat, pre in ((3, 1, 2), (100, 50, 50), (1, 1, 1)):
        config = edited(default, "train.epochs", epochs)
        assert clat_epochs(config, "pgd_at+clat") == clat
        assert pretrain_epochs(config, "pgd_at+clat") == max(epochs - clat, 1) == pre
    cfg = resolve(edited(default, "train.epochs", 10))
    options = clat_config(cfg, "fashion_mnist", "pgd_at+clat")
    assert options["epochs"] == 5 and options["lam"] == "auto"
    assert options["reselect_every"] is None and "pretrain_epochs" not in options
    bad = edited(default, "techniques.pgd_at+clat.lam", "half")
    assert "techniques.pgd_at+clat.lam" in problems(bad)


def test_validation_subset_is_checked_against_the_whole_split_when_train_size_is_null(default):
    config = edited(default, "datasets.fashion_mnist.train_size", None)
    assert resolve(edited(config, "datasets.fashion_mnist.val_size", 59999))
    text = problems(edited(config, "datasets.fashion_mnist.val_size", 60000))
    assert "val_size: 60000 must be smaller than the training subset (60000" in text


def test_a_subset_above_its_split_is_noted_for_the_report(default):
    cfg = resolve(edited(default, "datasets.fashion_mnist.test_size", 12000))
    note = (
        "datasets.fashion_mnist.test_size: 12000 is above the test split (10000 images); "
        "all 10000 are used"
    )
    assert cfg.notes == (note,)
    assert note_options(cfg) == ["--config-note", note]
    # exactly the split: nothing adjusted, nothing noted
    assert resolve(edited(default, "datasets.fashion_mnist.test_size", 10000)).notes == ()
    assert note_options(resolve(default)) == []


# --- job arguments ---------------------------------------------------------------------------


def test_string_options_reach_the_arguments_verbatim(default):
    """Arguments are values, not shell text: the rule quotes each one (`{params.x:q}`)."""
    tricky = 'it\'s a "folder"; $(rm -rf x) `y`'
    config = edited(default, "datasets.fashion_mnist.source_dir", tricky)
    config = edited(config, "architectures.vit_tiny", {"depth": 4, "note": tricky})
    cfg = resolve(config)
    assert prepare_args(cfg, "fashion_mnist", "test")["source"] == ["--source-dir", tricky]
    arch_config = train_args(cfg, "fashion_mnist", "vit_tiny", "standard")["arch_config"]
    assert json.loads(arch_config) == {"depth": 4, "note": tricky}


def test_attack_arguments_follow_the_norm_and_levels(default):
    config = edited(default, "attacks.pgd_l2", {"steps": 5, "levels": [1, 3], "points": 40})
    cfg = resolve(config)
    args = attack_args(cfg, "fashion_mnist", "pgd_l2")
    # eps_l2 of fashion_mnist is [0.5, 1.0, 2.0]: positions 1 and 3
    assert args["levels"] == ["--level", "1", "--eps", "0.5", "--level", "3", "--eps", "2.0"]
    assert (args["attack_config"], args["points"]) == ('{"steps":5}', 40)
    config = edited(config, "attacks.cw_linf", {"steps": 10, "levels": "largest"})
    cw = attack_args(resolve(config), "fashion_mnist", "cw_linf")
    assert cw["levels"] == ["--level", "3", "--eps", "0.1"] and cw["points"] == "all"
    every = attack_args(cfg, "fashion_mnist", "cw_linf")  # the default: every level
    assert every["levels"] == ["--level", "1", "--eps", "0.02", "--level", "2", "--eps", "0.05"] + [
        "--level",
        "3",
        "--eps",
        "0.1",
    ]


def test_transfer_and_probe_arguments(default):
    cfg = resolve(default)
    craft = craft_transfer_args(cfg, "fashion_mnist")
    assert craft["crafts"] == ["--craft", "fgsm:3:0.1", "--craft", "pgd_linf:3:0.1"]
    assert "early_stop" not in json.loads(craft["attacks"])["pgd_linf"]
    assert probe_args(cfg, "fashion_mnist")["eps"] == ["0.02", "0.05", "0.1"]


def test_params_hash_follows_the_parameters_not_the_resources(default):
    base = params_hash(resolve(default))
    assert len(base) == 16
    assert params_hash(resolve(edited(default, "resources", {"train": {"gpu": 2}}))) == base
    assert params_hash(resolve(edited(default, "seed", 1))) != base


# --- datasets of kind image_folder (workflow/labconfig/folders.py) ------------------------------


def folder_config(default: dict, **entry) -> dict:
    """params.yaml with a 224 px image folder `mine` as the grid's only dataset."""
    config = edited(default, "grid.datasets", ["mine"])
    base = {"kind": "image_folder", "image_size": 224, "train_size": None, "test_size": None}
    config["datasets"]["mine"] = {**base, "val_size": 50, "subset_seed": 0, **entry}
    return config


def test_names_mirror_the_noise_tables():
    from robustlab.noise.natural.tables import CLASS_SIDES
    from robustlab.noise.stability.tables import LARGE_MIN, SMALL_MAX

    assert tuple(CLASS_SIDES.values()) == lc_names.CORRUPTION_SIDES
    assert lc_names.PERTURBATION_SIDES == ((1, SMALL_MAX), (LARGE_MIN, None))


def test_a_folder_dataset_defaults_to_robustart_imagenet_budgets(default):
    cfg = resolve(folder_config(default))
    entry = cfg["datasets"]["mine"]
    # RobustART's ImageNet budgets: L-inf 0.5/255, 2/255, 8/255; L2 0.5, 2, 8; L1 100, 400, 1600
    assert entry["eps"] == [0.5 / 255, 2 / 255, 8 / 255]
    assert (entry["eps_l2"], entry["eps_l1"]) == ([0.5, 2.0, 8.0], [100.0, 400.0, 1600.0])
    assert (entry["resize"], entry["channels"], entry["source_dir"]) == (224, 3, "data/raw/mine")
    assert cfg.notes == ()  # sizes unknown until read: nothing is adjusted
    # training budgets resolve against those levels: pgd_at trains at the largest, 8/255
    assert json.loads(train_args(cfg, "mine", "wrn_10_2", "pgd_at")["technique_config"])[
        "eps"
    ] == pytest.approx(8 / 255)
    # stated values win over the defaults
    mine = resolve(folder_config(default, eps=[0.01], eps_l2=[1.0], eps_l1=[10.0], resize=256))
    assert mine["datasets"]["mine"]["eps"] == [0.01] and mine["datasets"]["mine"]["resize"] == 256


def test_folder_prepare_jobs_get_kind_options_and_a_listing_fingerprint(default, tmp_path):
    root = tmp_path / "mine"
    config = folder_config(default, source_dir=str(root), resize=256, channels=1)
    args = prepare_args(resolve(config), "mine", "test")
    assert args["kind"] == [
        "--kind", "image_folder", "--image-size", "224", "--resize", "256", "--channels", "1",
    ]  # fmt: skip
    assert args["source"] == ["--source-dir", str(root)] and args["size"] == "all"
    assert args["fingerprint"] == "absent"  # a dry run needs no folder
    (root / "train/cat").mkdir(parents=True)
    (root / "val/cat").mkdir(parents=True)
    (root / "val/cat/a.png").write_bytes(b"one")
    first = prepare_args(resolve(config), "mine", "test")["fingerprint"]
    assert first == prepare_args(resolve(config), "mine", "test")["fingerprint"]
    (root / "val/cat/a.png").write_bytes(b"other")  # a different size
    second = prepare_args(resolve(config), "mine", "test")["fingerprint"]
    (root / "val/cat/b.png").write_bytes(b"x")
    third = prepare_args(resolve(config), "mine", "test")["fingerprint"]
    assert len({"absent", first, second, third}) == 4
    # a registered dataset has neither
    plain = prepare_args(resolve(default), "fashion_mnist", "train")
    assert (plain["kind"], plain["fingerprint"]) == ([], "")


BAD_FOLDERS = [
    # image_size None: the key is removed
    ("no image_size", {"image_size": None}, ["datasets.mine: 'image_size' is a required property"]),
    ("unknown kind", {"kind": "video_folder"}, ["datasets.mine.kind", "image_folder"]),
    (
        "grey-blue",
        {"channels": 2},
        ["datasets.mine.channels: 2 is not allowed; allowed values: 1, 3"],
    ),
    ("resize below", {"resize": 200}, ["datasets.mine.resize: 200 is below image_size (224)"]),
    ("download", {"download": True}, ["datasets.mine.download: a folder", "cannot be downloaded"]),
    (
        "validation subset as large as the training subset",
        {"train_size": 50},
        ["datasets.mine.val_size: 50 must be smaller than train_size (50)"],
    ),
    (
        "a side without corruption tables",
        {"image_size": 100, "resize": None},
        ["datasets.mine.image_size: 100 px has no corruptions parameter table", "224"],
    ),
]


@pytest.mark.parametrize("case", BAD_FOLDERS, ids=[c[0] for c in BAD_FOLDERS])
def test_bad_folder_datasets_are_refused_naming_the_key(case, default):
    _, entry, expected = case
    config = folder_config(default, **entry)
    if entry.get("image_size", 0) is None:
        del config["datasets"]["mine"]["image_size"]
    text = problems(config)
    for fragment in expected:
        assert fragment in text, f"{fragment!r} missing from:\n{text}"


def test_folder_checks_pass_where_the_rule_allows(default):
    # val_size below train_size; train_size null: the folder's size is unknown until read
    assert resolve(folder_config(default, train_size=51))
    assert resolve(folder_config(default, train_size=None))
    # 100 px has no corruption or perturbation table: allowed once neither is configured
    config = folder_config(default, image_size=100)
    config = edited(edited(config, "corruptions.names", []), "perturbations.names", [])
    assert resolve(config)["datasets"]["mine"]["resize"] == 100
    # 32 px uses the CIFAR tables of both
    assert resolve(folder_config(default, image_size=32))


def test_folder_keys_and_unknown_names_need_a_kind(default):
    text = problems(edited(default, "datasets.fashion_mnist.image_size", 28))
    assert "datasets.fashion_mnist.image_size: only a dataset with `kind: image_folder`" in text
    config = folder_config(default)
    del config["datasets"]["mine"]["kind"]
    config["datasets"]["mine"]["eps"] = [0.1]
    text = problems(config)
    assert "datasets.mine: not a registered dataset (cifar10, cifar100, fashion_mnist)" in text
    assert "add `kind: image_folder`" in text
    # a name with a path separator is refused by the schema
    config = folder_config(default)
    config["datasets"]["a/b"] = config["datasets"].pop("mine")
    assert "does not match" in problems(edited(config, "grid.datasets", ["a/b"]))


# --- external_models: models robustlab did not train ------------------------------------------


@pytest.fixture
def with_external(default, tmp_path) -> dict:
    """params.yaml with one external model (safetensors weights) in the grid."""
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")  # the content is checked by the import job, not here
    config = edited(default, "external_models", {
        "my_ext": {
            "dataset": "fashion_mnist", "arch": "small_cnn", "options": {"width": 4},
            "weights": str(weights), "normalization": {"mean": [0.3], "std": [0.4]},
        }
    })  # fmt: skip
    config["grid"]["architectures"] = [*config["grid"]["architectures"], "my_ext"]
    return config


def test_an_external_model_gets_one_run_and_no_training(with_external, default):
    from workflow.labconfig import import_args

    cfg = resolve(with_external)
    trained = resolve(default)
    assert cfg.runs == trained.runs + ["fashion_mnist/my_ext/external"]
    assert cfg.external_architectures == ["my_ext"]
    assert "my_ext" not in cfg.trained_architectures and "my_ext" not in cfg["architectures"]
    assert cfg.trained_techniques == trained.trained_techniques
    assert cfg.run_techniques == sorted({*trained.techniques, "external"})
    args = import_args(cfg, "fashion_mnist", "my_ext")
    weights = with_external["external_models"]["my_ext"]["weights"]
    assert args == {
        "source": ["--weights", weights],
        "normalization": '{"mean":[0.3],"std":[0.4]}',
        "arch": ["--arch", "small_cnn", "--arch-config", '{"width":4}'],
        "family": [],
        "key_prefix": [],
    }


def test_an_external_model_outside_the_grid_adds_no_run(with_external, default):
    config = edited(with_external, "grid.architectures", default["grid"]["architectures"])
    assert resolve(config).runs == resolve(default).runs


def test_an_external_models_technique_names_its_run(with_external):
    config = edited(with_external, "external_models.my_ext.technique", "pgd_at")
    assert resolve(config).runs[-1] == "fashion_mnist/my_ext/pgd_at"


EXTERNAL_CASES = {
    "clat": (
        "external_models.my_ext.technique",
        "pgd_at+clat",
        "external_models.my_ext.technique: 'pgd_at+clat': CLAT fine-tuning does not start "
        "from an external model",
    ),
    "missing file": (
        "external_models.my_ext.weights",
        "nowhere/model.safetensors",
        "external_models.my_ext.weights: 'nowhere/model.safetensors' does not exist",
    ),
    "pickle suffix": (
        "external_models.my_ext.weights",
        "model.pt",
        "external_models.my_ext.weights: 'model.pt' does not end in .safetensors; robustlab "
        "reads weights only as safetensors",
    ),
    "program suffix": (
        "external_models.my_ext",
        {"dataset": "fashion_mnist", "program": "model.pth", "family": "cnn",
         "normalization": {"mean": [0.3], "std": [0.4]}},
        "external_models.my_ext.program: 'model.pth' does not end in .pt2",
    ),
    "weights without arch": (
        "external_models.my_ext",
        {"dataset": "fashion_mnist", "weights": "m.safetensors",
         "normalization": {"mean": [0.3], "std": [0.4]}},
        "external_models.my_ext.arch: missing; safetensors weights need the registered "
        "architecture",
    ),
    "both files": (
        "external_models.my_ext.program",
        "model.pt2",
        "external_models.my_ext: give exactly one of `weights`",
    ),
    "program without family": (
        "external_models.my_ext",
        {"dataset": "fashion_mnist", "program": "m.pt2",
         "normalization": {"mean": [0.3], "std": [0.4]}},
        "external_models.my_ext.family: missing",
    ),
    "program with arch": (
        "external_models.my_ext",
        {"dataset": "fashion_mnist", "program": "m.pt2", "family": "cnn", "arch": "small_cnn",
         "normalization": {"mean": [0.3], "std": [0.4]}},
        "external_models.my_ext: arch apply to `weights` only",
    ),
    "dataset outside the grid": (
        "external_models.my_ext.dataset",
        "cifar10",
        "external_models.my_ext.dataset: 'cifar10' is not in grid.datasets (fashion_mnist)",
    ),
    "normalization lengths": (
        "external_models.my_ext.normalization",
        {"mean": [0.3, 0.3], "std": [0.4]},
        "external_models.my_ext.normalization: mean has 2 values but std has 1",
    ),
    "unknown key": (
        "external_models.my_ext.mean",
        [0.3],
        "external_models.my_ext: Additional properties are not allowed ('mean' was unexpected)",
    ),
    "zero std": (
        "external_models.my_ext.normalization.std",
        [0.0],
        "external_models.my_ext.normalization.std.0: 0.0 is less than or equal to the minimum",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(EXTERNAL_CASES))
def test_bad_external_models_are_refused_naming_the_key(case, with_external):
    path, value, message = EXTERNAL_CASES[case]
    assert message in problems(edited(with_external, path, value))


def test_an_external_model_cannot_take_an_architectures_name(with_external):
    config = copy.deepcopy(with_external)
    config["external_models"]["small_cnn"] = config["external_models"].pop("my_ext")
    assert "external_models.small_cnn: 'small_cnn' is also a registered architecture" in (
        problems(config)
    )
    config = edited(with_external, "architectures.my_ext", {"arch": "small_cnn"})
    assert "external_models.my_ext: 'my_ext' is also a key of architectures:" in problems(config)


def test_an_external_model_changes_the_figure_plan_like_its_card(with_external, default):
    from workflow.labconfig import figure_names

    # a second technique name (external) makes the technique comparison, as in the tables
    single = edited(default, "grid.techniques", ["standard"])
    assert "technique_comparison" not in figure_names(resolve(single))
    both = edited(with_external, "grid.techniques", ["standard"])
    assert "technique_comparison" in figure_names(resolve(both))


# --- named technique variants (techniques: KEY: {technique, seed, pretrained, options}) -------


def variant_config(default: dict, **techniques) -> dict:
    """params.yaml with grid.techniques the given variants' keys, defined under techniques:."""
    config = copy.deepcopy(default)
    config["grid"]["techniques"] = list(techniques)
    config["techniques"].update({k: v for k, v in techniques.items() if v is not None})
    return config


def test_variants_resolve_names_seeds_and_the_pretrained_run(default):
    config = variant_config(
        default,
        pgd_at_s1={"technique": "pgd_at", "seed": 1},
        clat_s1={"technique": "pgd_at+clat", "pretrained": "pgd_at_s1", "seed": 1},
        clat_random_s1={
            "technique": "pgd_at+clat",
            "pretrained": "pgd_at_s1",
            "selection": "random",
            "seed": 1,
        },
        **{"pgd_at+clat": None},  # a registered CLAT run: starts from pgd_at, as before
    )
    cfg = resolve(config)
    assert cfg.variant("clat_random_s1").technique == "pgd_at+clat"
    assert cfg.variant("clat_random_s1").arm == "clat_random"
    assert cfg.pretrained("clat_s1") == "pgd_at_s1" and cfg.pretrained("pgd_at+clat") == "pgd_at"
    assert cfg.pretrained("pgd_at_s1") is None
    assert cfg.clat_techniques == ["clat_s1", "clat_random_s1", "pgd_at+clat"]
    assert cfg.trained_techniques == ["pgd_at", "pgd_at_s1"]
    # train.epochs 3, CLAT epochs null = 1: both pretrained runs keep their epoch-2 weights
    assert cfg.snapshots == {"pgd_at": 2, "pgd_at_s1": 2}
    train = train_args(cfg, "fashion_mnist", "wrn_10_2", "pgd_at_s1")
    assert (train["technique"], train["seed"]) == ("pgd_at", 1)
    assert train["variant"] == ["--variant", "pgd_at_s1"]
    # the variant inherits techniques.pgd_at's options; the variant keys are not options
    assert train["technique_config"] == '{"eps":0.1,"random_start":true,"step_size":0.5,"steps":3}'
    clat = clat_args(cfg, "fashion_mnist", "wrn_10_2", "clat_random_s1")
    assert (clat["base"], clat["seed"], clat["init_epoch"]) == ("pgd_at", 1, 2)
    options = json.loads(clat["clat_config"])
    assert options["selection"] == "random" and options["lam"] == "auto"
    assert not {"technique", "seed", "pretrained"} & set(options)
    inputs = clat_inputs(cfg, "fashion_mnist", "wrn_10_2", "clat_random_s1")
    assert (
        inputs["snapshot"]
        == "models/fashion_mnist/wrn_10_2/pgd_at_s1/pretrain_snapshot.safetensors"
    )
    # a registered technique keeps the global seed and no --variant (its card is unchanged)
    plain = train_args(cfg, "fashion_mnist", "wrn_10_2", "pgd_at")
    assert (plain["seed"], plain["variant"]) == (default["seed"], [])
    assert clat_variant_options(cfg) == [
        "--clat-technique",
        "clat_s1",
        "--clat-technique",
        "clat_random_s1",
    ]


def test_default_params_have_no_variant_arguments(default):
    cfg = resolve(default)
    assert clat_variant_options(cfg) == []
    for technique in ("standard", "pgd_at"):
        assert train_args(cfg, "fashion_mnist", "wrn_10_2", technique)["variant"] == []
    assert clat_args(cfg, "fashion_mnist", "wrn_10_2", "pgd_at+clat")["variant"] == []


@pytest.mark.parametrize(
    ("techniques", "expected"),
    [
        ({"pgd_at_s1": {"technique": "pgd_att"}}, "techniques.pgd_at_s1.technique"),
        ({"pgd_at_s1": None}, "grid.techniques.0: 'pgd_at_s1' is neither a registered"),
        ({"pgd_at_s1": {"technique": "pgd_at", "seed": "1"}}, "techniques.pgd_at_s1.seed"),
        ({"pgd_at_s1": {"technique": "pgd_at", "seed": 1.5}}, "techniques.pgd_at_s1.seed"),
        (
            {"c": {"technique": "pgd_at+clat", "pretrained": "pgd_at_s9"}},
            "techniques.c.pretrained: 'pgd_at_s9' is not in grid.techniques",
        ),
        (
            {"s": {"technique": "standard"}, "c": {"technique": "pgd_at+clat", "pretrained": "s"}},
            "techniques.c.pretrained: 's' trains standard, not pgd_at",
        ),
        (
            {"p": {"technique": "pgd_at", "pretrained": "pgd_at"}},
            "techniques.p.pretrained: only a CLAT variant",
        ),
        (
            {"p": {"technique": "pgd_at", "selection": "random"}},
            "techniques.p: Additional properties are not allowed",
        ),
        ({"c": {"technique": "pgd_at+clat", "bn": "thaw"}}, "techniques.c.bn: 'thaw'"),
    ],
)
def test_bad_variants_are_refused_naming_the_key(default, techniques, expected):
    assert expected in problems(variant_config(default, **techniques))


def test_a_registered_key_takes_no_variant_options(default):
    config = edited(default, "techniques.pgd_at.seed", 1)
    assert "techniques.pgd_at: Additional properties are not allowed" in problems(config)


def test_the_clat_study_preset_plans_three_seeds_of_the_papers_arms():
    cfg = resolve(load_config(PARAMS, REPO / "presets" / "clat_study.yaml"))
    arms = {}
    for key in cfg.techniques:
        arms.setdefault(cfg.variant(key).arm, []).append(cfg.variant(key).seed)
    # PGD-AT, CLAT and the paper's two ablations on 3 seeds; the labelled variants on seed 0
    assert {arm for arm, seeds in arms.items() if seeds == [0, 1, 2]} == {
        "pgd_at", "clat", "clat_random", "clat_static",
    }  # fmt: skip
    assert {arm for arm, seeds in arms.items() if seeds == [0]} == {
        "clat_ce_adv", "clat_relative", "clat_bn_train", "clat_lr_x10",
    }  # fmt: skip
    assert cfg.snapshots == {"pgd_at_s0": 4, "pgd_at_s1": 4, "pgd_at_s2": 4}  # N = 4 of 6
    for key in cfg.clat_techniques:
        seed = cfg.variant(key).seed
        assert cfg.pretrained(key) == f"pgd_at_s{seed}"
        assert (
            json.loads(clat_args(cfg, "fashion_mnist", "wrn_10_2", key)["clat_config"])["epochs"]
            == 2
        )
