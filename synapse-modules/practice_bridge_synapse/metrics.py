"""What the modules count, served by Synapse itself: a module's metrics go into Synapse's
Prometheus registry and out through its ``metrics`` listener (``/_synapse/metrics``), each
Synapse process (every worker) counting its own (docs/admin.md#metrics-and-alerts).

``prometheus_client`` is Synapse's own dependency. Labels are errcodes: a small fixed set,
never a user, a room or anything a person wrote.
"""

from __future__ import annotations

from prometheus_client import Counter

REFUSALS = Counter(
    "practice_bridge_module_refusals",
    "What the practice-bridge modules refused in this Synapse process, by errcode.",
    ["errcode"],
)


def refused(errcode: str) -> None:
    """Count one refusal (each refusal error is made to be raised, and made once)."""
    REFUSALS.labels(errcode).inc()
