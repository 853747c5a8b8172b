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


def brief(reason: object, limit: int = 160) -> str:
    """The first line of a library's message (an exception or text), at most ``limit`` characters,
    cut at a word boundary with an ellipsis: what a one-line error quotes of a cause it did not
    write (a slice in the middle of a word reads as a typo). An exception with no message gives its
    class name."""
    text = str(reason).strip()
    line = (
        text.splitlines()[0].strip() if text else (type(reason).__name__ if isinstance(reason, BaseException) else "")
    )
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "…"
