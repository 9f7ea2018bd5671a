"""Names params.yaml may use, without importing torch.

The library's registries are the source of these names; tests/test_config.py checks that every
list here equals its registry, so a registry change fails a test instead of drifting.
"""

from __future__ import annotations

#: robustlab.data.registry.DATASETS, with the sizes of their train and test splits
SPLIT_SIZES: dict[str, dict[str, int]] = {
    "cifar10": {"train": 50000, "test": 10000},
    "cifar100": {"train": 50000, "test": 10000},
    "fashion_mnist": {"train": 60000, "test": 10000},
}
DATASETS: tuple[str, ...] = tuple(sorted(SPLIT_SIZES))
#: robustlab.data.registry.DATASET_KINDS: datasets the user brings as a folder
DATASET_KINDS: tuple[str, ...] = ("image_folder",)
#: robustlab.noise.natural.tables.CLASS_SIDES: image sides (min, max; None: no bound) that have
#: a corruption parameter table
CORRUPTION_SIDES: tuple[tuple[int, int | None], ...] = ((20, 28), (29, 64), (224, None))
#: robustlab.noise.stability.tables.SMALL_MAX / LARGE_MIN: sides with perturbation tables
PERTURBATION_SIDES: tuple[tuple[int, int | None], ...] = ((1, 64), (224, None))

#: robustlab.models.ARCHITECTURES
ARCHITECTURES: tuple[str, ...] = (
    "deit_small", "deit_tiny", "densenet121", "mlp_mixer", "mlp_mixer_base", "mlp_mixer_small",
    "mlp_mixer_tiny", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
    "preact_resnet18", "regnetx_200mf", "regnetx_400mf", "repvgg_a0", "repvgg_b0", "resnet18",
    "resnet34", "resnet50", "resnext50_32x4d", "robust_resnet", "robust_resnet_a1",
    "robust_resnet_a2", "robust_resnet_a3", "robust_resnet_a4", "robust_resnet_tiny",
    "shufflenet_v2", "small_cnn", "vgg16_bn", "vgg19_bn", "vit", "vit_base", "vit_tiny", "wrn",
    "wrn_10_2", "wrn_16_2", "wrn_16_4", "wrn_28_10", "wrn_34_10", "wrn_34_12", "wrn_34_20",
    "wrn_34_r", "wrn_46_14", "wrn_70_16", "wrn_a1", "wrn_a2", "wrn_a3", "wrn_a4",
)  # fmt: skip

#: robustlab.training.techniques.TECHNIQUES; "X+clat" fine-tunes X's model with CLAT
BASE_TECHNIQUES: tuple[str, ...] = ("awp", "fast_at", "mart", "pgd_at", "standard", "trades")
CLAT_SUFFIX = "+clat"
TECHNIQUES: tuple[str, ...] = BASE_TECHNIQUES + tuple(f"{t}{CLAT_SUFFIX}" for t in BASE_TECHNIQUES)

#: robustlab.noise.adversarial.ATTACKS and each attack's norm (its ``norm`` attribute); None
#: where the norm is the attack's `norm` parameter (default Linf)
ATTACK_NORMS: dict[str, str | None] = {
    "autoattack": None,
    "cw_linf": "linf",
    "ddn": "l2",
    "fgsm": "linf",
    "mim": "linf",
    "pgd_l1": "l1",
    "pgd_l2": "l2",
    "pgd_linf": "linf",
    "square": None,
}
ATTACKS: tuple[str, ...] = tuple(sorted(ATTACK_NORMS))

#: robustlab.noise.natural.corruption_names(): ImageNet-C's 15, 4 extras, MNIST-C's geometric
CORRUPTIONS: tuple[str, ...] = (
    "brightness", "contrast", "defocus_blur", "elastic_transform", "fog", "frost",
    "gaussian_blur", "gaussian_noise", "glass_blur", "impulse_noise", "jpeg_compression",
    "motion_blur", "pixelate", "rotate", "saturate", "scale", "shear", "shot_noise", "snow",
    "spatter", "speckle_noise", "translate", "zoom_blur",
)  # fmt: skip

#: robustlab.noise.stability.perturbation_names()
PERTURBATIONS: tuple[str, ...] = (
    "brightness", "gaussian_blur", "gaussian_noise", "motion_blur", "rotate", "scale", "shear",
    "shot_noise", "speckle_noise", "tilt", "translate", "zoom_blur",
)  # fmt: skip

#: the schema's $defs whose `enum` is filled from the lists above
SCHEMA_ENUMS: dict[str, tuple[str, ...]] = {
    "dataset_kind": DATASET_KINDS,
    "architecture_name": ARCHITECTURES,
    "base_technique_name": BASE_TECHNIQUES,
    "technique_name": TECHNIQUES,
    "attack_name": ATTACKS,
    "corruption_name": CORRUPTIONS,
    "perturbation_name": PERTURBATIONS,
}
