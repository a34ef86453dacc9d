"""Detection rules, one module each; :func:`build_rules` makes the enabled ones from a policy."""

from __future__ import annotations

from models.policy import Policy
from models.rules.base import SCOPES, Decision, Rule, RuleContext, Scope
from models.rules.bounce_storm import BounceStormRule
from models.rules.brute_force import BruteForceRule
from models.rules.credential_stuffing import CredentialStuffingRule
from models.rules.insecure_auth import InsecureAuthRule
from models.rules.login_ip_spread import LoginIpSpreadRule
from models.rules.password_spray import PasswordSprayRule
from models.rules.smtp_burst import SmtpBurstRule

__all__ = [
    "SCOPES",
    "BounceStormRule",
    "BruteForceRule",
    "CredentialStuffingRule",
    "Decision",
    "InsecureAuthRule",
    "LoginIpSpreadRule",
    "PasswordSprayRule",
    "Rule",
    "RuleContext",
    "Scope",
    "SmtpBurstRule",
    "build_rules",
]


def build_rules(policy: Policy, signing_key: bytes) -> list[Rule]:
    """The enabled rules, in a fixed order (the order of their decisions for one event)."""
    context = RuleContext(
        signing_key=signing_key,
        allowlist=policy.allowlist_matcher(),
        dry_run=policy.dry_run,
        alert_allowlisted=policy.allowlist.alert,
        max_keys=policy.state.max_keys,
        distinct_cap=policy.state.distinct_cap,
    )
    settings = policy.rules
    rules: list[Rule] = []
    if settings.password_spray.enabled:
        rules.append(PasswordSprayRule(settings.password_spray, context))
    if settings.credential_stuffing.enabled:
        rules.append(CredentialStuffingRule(settings.credential_stuffing, context))
    if settings.brute_force.enabled:
        rules.append(BruteForceRule(settings.brute_force, context))
    if settings.smtp_burst.enabled:
        rules.append(SmtpBurstRule(settings.smtp_burst, context))
    if settings.bounce_storm.enabled:
        rules.append(BounceStormRule(settings.bounce_storm, context))
    if settings.login_ip_spread.enabled:
        rules.append(LoginIpSpreadRule(settings.login_ip_spread, context))
    if settings.insecure_auth.enabled:
        rules.append(InsecureAuthRule(settings.insecure_auth, context))
    return rules
