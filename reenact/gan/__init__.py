"""StyleGAN2 generator and safe checkpoint loading."""

from reenact.gan.stylegan2 import Generator, GeneratorConfig, ffhq_config_f, tiny

__all__ = ["Generator", "GeneratorConfig", "ffhq_config_f", "tiny"]
