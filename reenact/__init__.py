"""reenact: face reenactment in real video with StyleGAN2 inversion and pivotal tuning."""

from reenact.errors import ReenactError

__version__ = "0.1.0"

__all__ = ["ReenactError", "__version__"]
