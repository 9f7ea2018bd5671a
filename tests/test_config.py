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
    from robustlab.data.registry import DATASETS
    from robustlab.models import ARCHITECTURES
    from robustlab.noise.adversarial import ATTACKS
    from robustlab.noise.natural import corruption_names
    from robustlab.noise.stability import perturbation_names
    from robustlab.training.techniques import TECHNIQUES

    assert list(lc_names.DATASETS) == DATASETS.names()
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
