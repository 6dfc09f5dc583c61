"""practice-bridge: the domain and the process of the practice messaging backend."""

__version__ = "0.1.0"
