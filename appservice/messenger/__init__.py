"""The portal Messenger: a small web client the bridge serves under ``/messenger/``."""

from .serve import MESSENGER_PATH, install_messenger

__all__ = ["MESSENGER_PATH", "install_messenger"]
