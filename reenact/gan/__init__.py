"""StyleGAN2 generator and safe checkpoint loading."""

from reenact.gan.checkpoints import detect_format, load_generator, save_generator
from reenact.gan.stylegan2 import Generator, GeneratorConfig, ffhq_config_f, tiny

__all__ = [
    "Generator",
    "GeneratorConfig",
    "detect_format",
    "ffhq_config_f",
    "load_generator",
    "save_generator",
    "tiny",
]
