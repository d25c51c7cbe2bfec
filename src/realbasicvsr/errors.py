"""The exception types users see: a problem with their input or settings, with the fix in the message.

One rule for the whole package: a problem the user can fix raises `UserError` (a bad path, a wrong file, missing
weights); an invalid value in a config dataclass raises `ConfigError`, which is both a `UserError` and a
`ValueError`, so Python callers may catch either. Library messages name settings by their Python names and never
by command-line flags; `option` names the setting the fix is about, and the command line adds its flag (`cli.py`).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix. The CLI prints it on one line (with the flag of `option`, if it has one)."""

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class ConfigError(UserError, ValueError):
    """An invalid value in a config (`UpscaleConfig`, `TrainConfig`, `DegradationConfig`, ...)."""
