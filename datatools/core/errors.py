"""Exceptions that carry enough context for a one-line user message (file, field, problem)."""
from __future__ import annotations


class DatatoolsError(Exception):
    """Base class for every error datatools raises on purpose. The CLI turns it into a clean message, never a traceback."""


class FormatError(DatatoolsError):
    """A file does not follow its format. Names the file, the field and what was expected versus found."""

    def __init__(self, path: str, field: str, reason: str) -> None:
        self.path = str(path)
        self.field = field
        self.reason = reason
        super().__init__(f"{self.path}: {field}: {reason}" if field else f"{self.path}: {reason}")


class UsageError(DatatoolsError):
    """The user asked for something that cannot be done (bad option combination, unsafe output path, ...)."""


class StrictModeError(DatatoolsError):
    """Raised under ``strict=True`` when the data has errors; nothing has been written."""

    def __init__(self, message: str, findings: tuple = ()) -> None:
        super().__init__(message)
        self.findings = findings
