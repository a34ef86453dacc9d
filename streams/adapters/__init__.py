"""Enforcement adapters: translate Postfix and Dovecot protocols to `ActiveCommands`.

Each adapter is its own process (`mailwarden adapter ...`): it reads
`mail.control` from the start into a `models.enforcement.ActiveCommands`
(`control.py`) and answers one protocol from it: Postfix policy delegation
(`postfix_policy.py`), Postfix socketmap (`socketmap.py`) or Dovecot's auth
policy HTTP (`dovecot_policy.py`). docs/adapters.md shows how to wire them.
"""
