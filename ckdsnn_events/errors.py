"""The exception types for mistakes a user can fix.

Library code raises :class:`UserError` with a message that names the file or option at fault and
what to do about it. The CLI prints that message and exits with ``exit_code`` (2), without a
traceback. Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A bad file, a missing dataset or an invalid option; ``str(err)`` is the whole message."""

    exit_code = 2


class Interrupted(UserError):
    """The user stopped a long job (Ctrl-C); the message says how to resume."""

    exit_code = 130
