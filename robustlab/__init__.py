"""robustlab: robustness of architectures and training techniques against adversarial,
natural and system noise."""

__version__ = "0.1.0"
