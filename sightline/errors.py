"""Exception tree of sightline.

Every error raised on purpose by sightline derives from :class:`SightlineError`, knows where
the bad input was (``path``, ``position``, ``field``) and which exit code the CLI uses for it.

- SightlineError            (exit 2)
  - InputError             bad or unreadable input file, unknown format
  - IntelError             threat-intelligence input that cannot be used
  - ConfigError            bad configuration / workspace
  - EngineError            query engine failure (exit 3)
  - AuthError              serve: authentication / authorization
"""

from __future__ import annotations

from pathlib import Path


class SightlineError(Exception):
    """Root of sightline's errors; carries where the bad input was and what to do next."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        position: int | str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.position = position
        self.field = field
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path
            if self.position is not None:
                where += f":{self.position}"
            if self.field:
                where += f" [{self.field}]"
            where += ": "
        text = where + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class InputError(SightlineError):
    """Telemetry, registry or scan input that cannot be read."""


class IntelError(SightlineError):
    """Threat-intelligence input that cannot be used."""


class ConfigError(SightlineError):
    """Bad configuration or workspace state."""


class EngineError(SightlineError):
    """The query engine failed."""

    exit_code = 3


class AuthError(SightlineError):
    """Authentication or authorization failure (serve)."""


__all__ = [
    "SightlineError",
    "InputError",
    "IntelError",
    "ConfigError",
    "EngineError",
    "AuthError",
]
