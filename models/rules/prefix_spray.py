"""Prefix spraying: many accounts failing across one network prefix.

A sprayer with a pool of addresses in one network (a rented /24, a cloud
tenant's /64) stays under the per-IP limit of password spraying by rotating
addresses. Seen from the prefix (``[network] ipv4_prefix``, default /24;
``ipv6_prefix``, default /64) it is still many distinct accounts failing.
The prefix is blocked: ``block_ip`` with ``subject_type = "prefix"`` and the
network in CIDR form as the subject, which adapters match against every
address inside it.

The same logic as password spraying (``models/rules/password_spray.py``)
over the shared ``auth_by_prefix`` statistics, with higher defaults: 30
distinct accounts or 300 failures within 10 min block the prefix for one
hour. A prefix where at least ``[nat] prefix_users`` accounts logged in
successfully within ``[nat] window`` (an ISP's customer range, a campus) gets
thresholds multiplied by ``[nat] factor``; a prefix overlapping an
allowlisted network is never blocked.
"""

from __future__ import annotations

from models.rules.password_spray import SprayRule


class PrefixSprayRule(SprayRule):
    name = "prefix_spray"
    subject_type = "prefix"
