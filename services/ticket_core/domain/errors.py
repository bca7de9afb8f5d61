"""Refusals the domain can give. Each carries a stable `code` the API turns into problem+json."""


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidInput(DomainError):
    """The command's values break a rule (too long, empty, unknown value)."""

    def __init__(self, code: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail, field=field)
        self.code = code


class Conflict(DomainError):
    """The command clashes with the current state (e.g. a conversation linked elsewhere)."""

    def __init__(self, code: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail, field=field)
        self.code = code


class StaleVersion(DomainError):
    """The caller's `If-Match` names an older version than the ticket's."""

    code = "stale_version"


class ConcurrentUpdate(DomainError):
    """Another change committed between this command's read and its write."""

    code = "concurrent_update"


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class UnknownMember(DomainError):
    """The caller is not a member of the workspace (removed, or never was)."""

    code = "unknown_member"
