"""One error hierarchy, caught once in the CLI.

Every error a user can cause is a `UsagebillError`: it knows its exit code (SPEC §7) and
renders as one or two plain lines naming the file (and line) and what to do. Anything else
reaching the CLI is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file, and when known a line and column (1-based)."""

    file: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)


class UsagebillError(Exception):
    """A problem the user can act on. `exit_code` follows SPEC §7."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        """The text shown on stderr, one entry per line."""
        return [self.message] + ([self.hint] if self.hint else [])


class OptionError(UsagebillError):
    """A flag or argument has a value that cannot be used (bad period, unknown customer)."""


class InputError(UsagebillError):
    """An input file is missing, unreadable or not what it should be."""


@dataclass(frozen=True)
class ConfigIssue:
    location: Location
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.location}: {where}{self.message}"


class ConfigError(UsagebillError):
    """Every mistake found in a config file, reported together."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = sorted(
            issues, key=lambda i: (i.location.line or 0, i.location.col or 0, i.path)
        )
        n = len(self.issues)
        super().__init__(f"{n} problem{'s' if n != 1 else ''} in the config")

    def lines(self) -> list[str]:
        return [str(i) for i in self.issues]


class DatabaseError(UsagebillError):
    """The database cannot be used as asked: locked, too new, unwritable, missing."""


class DataError(UsagebillError):
    """The data said no (exit 1): a snapshot differs, a strict ingest found bad lines."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, details: list[str] | None = None):
        super().__init__(message, hint=hint)
        self.details = details or []

    def lines(self) -> list[str]:
        return [self.message, *self.details] + ([self.hint] if self.hint else [])
