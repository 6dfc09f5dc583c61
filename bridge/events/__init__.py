"""The event pipeline: Synapse's transactions stored durably, then processed in order per room."""

from .pipeline import BatchHandler, EventHandler, Pipeline
from .queue import Batch, EventQueue, QueuedEvent

__all__ = ["Batch", "BatchHandler", "EventHandler", "EventQueue", "Pipeline", "QueuedEvent"]
