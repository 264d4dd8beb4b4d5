"""Errors that are the user's to fix (the CLI prints them as one line and exits 2), and the exit codes."""

# Exit codes of every command (README, Safety). `check` adds its own meanings to 1 and 2: regression, and
# "cannot judge" (a refusal to compare, like any other user error).
EXIT_OK = 0
EXIT_USER_ERROR = 2
# An exception the package did not expect: a bug, reported with its traceback under --debug (sysexits' EX_SOFTWARE).
EXIT_INTERNAL_ERROR = 70
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A bad argument, a malformed file, a model that does not fit: never a bug in the package."""


class DataError(UserError):
    """A dataset file or folder that cannot be read as the project's records."""


class ContextBudgetError(UserError):
    """An in-context prompt that would not fit the model's window (lm-eval would silently left-truncate it)."""
