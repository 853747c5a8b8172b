"""User-facing errors.

Every problem caused by the user's input (a file, a column, a flag, a model path)
is raised as :class:`AlembertError` with a one-line message that names the problem
and the fix. The CLI prints it as ``error: <message>`` and exits with code 2;
``--debug`` shows the traceback.
"""


class AlembertError(Exception):
    """A bad input, reported to the user in one line (CLI exit code 2)."""

    exit_code = 2

    def __init__(self, message: str):
        if "\n" in message:
            message = " ".join(message.split())
        super().__init__(message)
