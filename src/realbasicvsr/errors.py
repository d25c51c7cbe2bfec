"""The exception types users see: a problem with their input or settings, with the fix in the message.

One rule for the whole package: a problem the user can fix raises `UserError` (a bad path, a wrong file, missing
weights); an invalid value in a config dataclass raises `ConfigError`, which is both a `UserError` and a
`ValueError`, so Python callers may catch either. Library messages name settings by their Python names and never
by command-line flags; `option` names the setting the fix is about, and the command line adds its flag (`cli.py`).
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

# repr() limits for `brief`: a few items per container, a few levels deep.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple, _REPR.maxset = 3, 8, 8, 8, 8
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 80, 80, 40


class UserError(Exception):
    """A problem the user can fix. The CLI prints it on one line (with the flag of `option`, if it has one)."""

    def __init__(self, message: str, *, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class ConfigError(UserError, ValueError):
    """An invalid value in a config (`UpscaleConfig`, `TrainConfig`, `DegradationConfig`, ...)."""


def brief(value: Any, limit: int = 80) -> str:
    """`repr(value)` for an error message: at most `limit` characters, and never built in full first. A small YAML
    or JSON file can hold a value whose full repr is gigabytes long (nested aliases, "billion laughs")."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**40:
        # repr() of an int over 4300 digits raises ValueError (Python 3.11+), and a long one is noise anyway.
        text = f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    else:
        text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(error: UserError, flags: dict[str, str]) -> str:
    """The error as one line in the command's words: a setting named as `name=True` becomes its flag, `name='value'`
    becomes `flag value`, and the flag that sets `error.option` is named when the text does not name it already."""
    text = " ".join(str(error).split())
    for option, flag in flags.items():
        text = text.replace(f"{option}=True", flag)
        text = re.sub(rf"\b{re.escape(option)}='([^' ]+)'", rf"{flag} \1", text)
    flag = flags.get(error.option) if error.option else None
    return f"{text} (set with {flag})" if flag and flag not in text else text
