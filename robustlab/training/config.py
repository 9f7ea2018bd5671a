"""``TrainConfig``: the optimisation hyper-parameters and modifiers of one run.

Every modifier defaults to "off", so a config that names none of them trains as before:
SGD (``optimizer``), no EMA (``ema_decay`` 0), no label smoothing, no mixup/cutmix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPTIMIZERS = ("sgd", "sgd_nesterov", "adamw")
SCHEDULES = ("cosine", "multistep", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation hyper-parameters and technique modifiers of one run."""

    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.1
    optimizer: str = "sgd"  # sgd | sgd_nesterov | adamw
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = False  # with optimizer "sgd": the same as "sgd_nesterov"
    adam_betas: tuple[float, float] = (0.9, 0.999)  # AdamW
    weight_decay: float = 5e-4  # applied to biases and 1-d parameters (BN) only with the next
    bn_bias_weight_decay: bool = False  # True: decay every parameter, BN scales and biases too
    schedule: str = "cosine"  # cosine | multistep | constant
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of training, for multistep
    gamma: float = 0.1
    warmup_epochs: float = 0.0  # linear warm-up from 0, in epochs (fractions allowed)
    ema_decay: float = 0.0  # > 0: EMA of the weights; the EMA weights are validated and saved
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0  # > 0: mixup with lambda ~ Beta(alpha, alpha)
    cutmix_alpha: float = 0.0  # > 0: cutmix; with mixup too, each batch picks one (p = 0.5)
    amp: str = "bf16"  # bf16 autocast for training steps | none | auto (bf16 where native;
    # robustlab.training.precision); evaluation is always fp32
    channels_last: bool = False
    val_pgd_eps: float = 0.1
    val_pgd_steps: int = 10
    val_pgd_size: int = 0  # validation images attacked each epoch (fixed subset); 0: all
    eval_batch_size: int = 500
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(self.milestones))
        object.__setattr__(self, "adam_betas", tuple(self.adam_betas))
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and lr must be positive")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be cosine, multistep or constant, not {self.schedule!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}"
            )
        if self.nesterov and self.optimizer == "adamw":
            raise ValueError("nesterov applies to SGD only; drop it or use optimizer sgd_nesterov")
        if self.amp not in ("auto", "bf16", "none"):
            raise ValueError(f"amp must be auto, bf16 or none, not {self.amp!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0: off), got {self.ema_decay}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0 (0: off)")
        if self.val_pgd_size < 0:
            raise ValueError(f"val_pgd_size must be >= 0 (0: all), got {self.val_pgd_size}")

    @property
    def mixes(self) -> bool:
        """Whether batches are mixed (mixup or cutmix)."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0
