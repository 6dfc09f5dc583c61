"""practice-bridge's Synapse modules, and the pure rule code the bridge shares with them.

Installed into Synapse's own environment (``pip install synapse-modules/``), with nothing but
what Synapse already has. Loaded through homeserver.yaml's ``modules:``:

- :mod:`practice_bridge_synapse.rules` (``PracticeRules``): the practice rules, before anything
  is stored;
- :mod:`practice_bridge_synapse.media` (``PracticeMedia``): attachments and practice-only
  downloads;
- :mod:`practice_bridge_synapse.logins` (``PracticeLogins``): clients sign in only through the
  bridge, never with a password or single sign-on.

The rest is standard library only and imported by the bridge as well, so that both sides read a
policy, measure a message and answer with the same errcodes from one place:
:mod:`~practice_bridge_synapse.policy`, :mod:`~practice_bridge_synapse.errors` and
:mod:`~practice_bridge_synapse.names`.

Nothing is imported here: the bridge imports the pure modules without pulling in Synapse, and
Synapse loads the modules without pulling in the bridge.
"""
