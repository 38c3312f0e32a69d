"""One hierarchy for every failure the optimizer reports.

Callers catch `OptimizerError` for anything the optimizer raises on purpose; the CLI maps
`BadInputError` to exit status 2 and every other `OptimizerError` to 1.
"""

from __future__ import annotations


class OptimizerError(Exception):
    """Base of every error the optimizer raises deliberately."""


class BadInputError(OptimizerError):
    """The caller gave input that cannot be used: a missing file, a missing column, a bad value."""


class PlatformError(OptimizerError):
    """A platform service answered in a way the optimizer cannot use."""

    def __init__(self, message: str, *, service: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.status_code = status_code


class PlatformUnavailableError(PlatformError):
    """The service could not be reached or kept failing after every retry."""


class PlatformRequestError(PlatformError):
    """The service refused the request (a 4xx other than 429); retrying will not help."""


class AuthenticationError(PlatformRequestError):
    """The service rejected the credential (401 or 403)."""


class WarehouseError(OptimizerError):
    """The warehouse could not be opened, migrated or written."""


class PolicyBlockedError(OptimizerError):
    """Governance evaluated a proposed change and a blocking policy forbids it."""


class ApprovalRejectedError(OptimizerError):
    """A person rejected a proposed rollout, or nobody approved it in time."""


class ServiceStartError(OptimizerError):
    """A service started as a child process exited, or did not answer, while starting."""
