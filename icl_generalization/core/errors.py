"""Errors that are the user's to fix: the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """A bad argument, a malformed file, a model that does not fit: never a bug in the package."""


class DataError(UserError):
    """A dataset file or folder that cannot be read as the project's records."""


class ContextBudgetError(UserError):
    """An in-context prompt that would not fit the model's window (lm-eval would silently left-truncate it)."""
