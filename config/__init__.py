"""Config schema, loading, upgrading and validation."""

from .fields import ConfigError
from .loader import EXAMPLE_PATH, ConfigFile, generate_config, load_config, write_config
from .schema import PLACEHOLDER_TOKEN, Config

__all__ = [
    "EXAMPLE_PATH",
    "PLACEHOLDER_TOKEN",
    "Config",
    "ConfigError",
    "ConfigFile",
    "generate_config",
    "load_config",
    "write_config",
]
