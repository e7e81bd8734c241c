"""Errors that the command line reports as one line, without a traceback."""


class UserError(Exception):
    """Bad input from the user: a file, a config key, a command-line value. The message names the culprit."""


def located(path, lineno: int | None, message: str) -> UserError:
    """An error pointing at `path:lineno` (or just `path`)."""
    where = f"{path}:{lineno}" if lineno is not None else f"{path}"
    return UserError(f"{where}: {message}")
