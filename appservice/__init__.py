"""Matrix-facing adapters: transaction intake, provisioning API, bot commands, Synapse module.

Nothing is imported here: ``appservice.synapse_module`` is loaded by Synapse on Twisted and must
not pull in asyncio libraries.
"""
