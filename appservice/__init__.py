"""Matrix-facing adapters: transaction intake, provisioning API, bot commands, the Messenger.

(The Synapse modules are a package of their own: ``synapse-modules/practice_bridge_synapse``.)
"""
