"""Bearer-token authentication and an RBAC stand-in: deny rules with the real 403 wording."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .errors import StatusError, details, unauthorized


@dataclass(frozen=True)
class DenyRule:
    """Requests matching verb, resource (`pods`, `pods/log`, `*`) and namespace get a 403."""

    verb: str
    resource: str
    namespace: str | None = None

    def matches(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        if self.verb not in ("*", verb):
            return False
        plural = resource.split("/", 1)[0]
        sub = resource[len(plural) :]
        qualified = f"{plural}.{group}{sub}" if group else resource
        if self.resource not in ("*", resource, qualified):
            return False
        return self.namespace is None or self.namespace == namespace


class Authorizer:
    """One user (the token's); everything is allowed except what a test denies."""

    def __init__(self, token: str, user: str) -> None:
        self.token = token
        self.user = user
        self._lock = threading.Lock()
        self._rules: list[DenyRule] = []
        #: Every (verb, group, resource, namespaced) asked for, to check RBAC rules against.
        self.calls: set[tuple[str, str, str, bool]] = set()

    def authenticate(self, authorization: str | None) -> None:
        if authorization != f"Bearer {self.token}":
            raise unauthorized()

    def deny(self, verb: str, resource: str, namespace: str | None = None) -> DenyRule:
        rule = DenyRule(verb, resource, namespace)
        with self._lock:
            self._rules.append(rule)
        return rule

    def allow(self, rule: DenyRule | None = None) -> None:
        """Lift one rule, or all of them."""
        with self._lock:
            if rule is None:
                self._rules.clear()
            elif rule in self._rules:
                self._rules.remove(rule)

    def check(self, verb: str, group: str, resource: str, namespace: str | None, name: str) -> None:
        with self._lock:
            self.calls.add((verb, group, resource, namespace is not None))
            denied = any(r.matches(verb, group, resource, namespace) for r in self._rules)
        if not denied:
            return
        plural = resource.split("/", 1)[0]
        qualified = f"{plural}.{group}" if group else plural
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        why = (
            f'User "{self.user}" cannot {verb} resource "{resource}" in API group "{group}" {scope}'
        )
        head = f'{qualified} "{name}"' if name else qualified
        raise StatusError(
            403, "Forbidden", f"{head} is forbidden: {why}", details(group, plural, name)
        )
