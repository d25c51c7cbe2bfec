"""The one exception type users see: a problem with their input, with the fix in the message."""


class UserError(Exception):
    """A problem the user can fix (bad path, wrong file, missing weights). The CLI prints it on one line."""
