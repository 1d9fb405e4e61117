"""Errors that reach the user. Each names what is wrong and where (file, column, parameter)."""


class AdrlError(Exception):
    """Base class: a problem the user can fix, reported without a traceback by the CLI and stages."""


class ConfigError(AdrlError):
    """A bad value in params.yaml; the message names the key and the allowed values."""


class InputError(AdrlError):
    """Bad input data; the message names the file and, where it applies, the column and rows."""


class EmptyResultError(AdrlError):
    """A step left nothing (e.g. an empty cohort); the message names the step."""
