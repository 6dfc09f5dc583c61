"""The practice rules on the bridge's side: enforced after the fact when the module is absent.

Synapse enforces them before storing anything through the rules module
(``practice_bridge_synapse.rules``); this package is the defence in depth for a homeserver that
cannot load the module.
"""

from .posthoc import MatrixActions, PostHocRules
from .store import RuleStore, Violation

__all__ = ["MatrixActions", "PostHocRules", "RuleStore", "Violation"]
