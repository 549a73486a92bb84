"""The error hierarchy shared by every domain.

Each error carries what the outside world needs to recognise it: a stable
``slug`` (the last segment of its RFC 9457 problem ``type``), a short
``title`` and the HTTP ``status`` it maps to. Domain code raises these and
knows nothing of HTTP; ``authority.web.problems`` renders them in one place,
and the command line prints them as one line.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AuthorityError(Exception):
    """Base of every error Authority reports to a user."""

    slug: ClassVar[str] = "error"
    title: ClassVar[str] = "Request failed"
    status: ClassVar[int] = 400

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        #: HTTP headers the answer must carry (e.g. WWW-Authenticate); rendered by the web layer.
        self.headers: dict[str, str] = {}


class ConfigurationError(AuthorityError):
    """A setting is missing, malformed or unsafe."""

    slug = "configuration"
    title = "Invalid configuration"
    status = 500


class NotFound(AuthorityError):
    """The named thing does not exist."""

    slug = "not-found"
    title = "Not found"
    status = 404


class Conflict(AuthorityError):
    """The request conflicts with the current state (a duplicate, a final state)."""

    slug = "conflict"
    title = "Conflict"
    status = 409


class InvalidInput(AuthorityError):
    """The request is well-formed but its content is not acceptable."""

    slug = "invalid-input"
    title = "Invalid input"
    status = 422


class Unavailable(AuthorityError):
    """A component Authority depends on (database, key store) is not usable now."""

    slug = "unavailable"
    title = "Service unavailable"
    status = 503
