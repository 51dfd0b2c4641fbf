"""The caller of an operation: a user, a service account, an API key or nobody."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["passenger", "agent", "operations", "admin", "service"]
ROLES: tuple[Role, ...] = ("passenger", "agent", "operations", "admin", "service")
Kind = Literal["anonymous", "user", "api_key", "oidc", "platform"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. `tenant` is the airline or airport they act for; None with the admin role
    is the platform's operator, who sees every tenant."""

    subject: str
    kind: Kind
    roles: frozenset[str] = field(default_factory=frozenset)
    tenant: str | None = None
    display: str = ""

    @property
    def authenticated(self) -> bool:
        return self.kind != "anonymous"

    @property
    def is_operator(self) -> bool:
        """The platform's own administrator (no tenant): every tenant's resources."""
        return "admin" in self.roles and self.tenant is None

    def has_any(self, roles: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
        return bool(self.roles.intersection(roles))

    def may_act_for(self, tenant: str | None) -> bool:
        """Whether this caller may touch a resource owned by `tenant` (None: the platform's)."""
        if self.is_operator:
            return True
        return self.tenant is not None and tenant == self.tenant


ANONYMOUS = Principal(subject="anonymous", kind="anonymous")
PLATFORM = Principal(
    subject="jetbridge", kind="platform", roles=frozenset({"admin", "service"}), tenant=None
)
