"""Training: techniques by name, the resumable loop, modifiers, CLAT fine-tuning."""

from robustlab.training.config import TrainConfig
from robustlab.training.loop import fit
from robustlab.training.techniques import build_technique, technique_names

__all__ = ["TrainConfig", "build_technique", "fit", "technique_names"]
