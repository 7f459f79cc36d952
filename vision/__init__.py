"""Image code shared by training, the service and the clients.

Torch-free on purpose: the service and the clients import it, and the training crops must be
made by exactly the code that makes the serving crops.
"""

from vision.errors import InputError

__version__ = "0.2.0"  # the project's one version: pyproject.toml and the service's /docs.json read it

__all__ = ["InputError", "__version__"]
