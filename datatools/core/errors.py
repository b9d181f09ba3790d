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


def _reason(err: BaseException | str) -> str:
    """The why of an OSError, as the system says it (``No space left on device``), without the path repeated."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)


class OutputError(DatatoolsError):
    """An output could not be written: no space left, a read-only place, no permission, a file where a folder
    should be. One line, ``cannot write PATH: why``, and the output was left as it was."""

    def __init__(self, path: str, reason: BaseException | str) -> None:
        self.path, self.reason = str(path), _reason(reason)
        super().__init__(f"cannot write {self.path}: {self.reason}")

    def __reduce__(self):  # picklable from a worker process or a Ray task
        return (type(self), (self.path, self.reason))


class InputError(DatatoolsError):
    """An input could not be read at all (as opposed to a bad file, which is a finding): ``cannot read PATH: why``."""

    def __init__(self, path: str, reason: BaseException | str) -> None:
        self.path, self.reason = str(path), _reason(reason)
        super().__init__(f"cannot read {self.path}: {self.reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


class NoInputError(DatatoolsError):
    """SRC holds nothing to work on (an empty or wrong folder). The message says what was looked for where."""
