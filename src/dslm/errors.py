"""User-facing errors.

Every problem a user can cause (bad config, wrong checkpoint, missing file, unknown
sampler, NaN loss, ...) is raised as a :class:`DSLMError` subclass with a one-line
message naming the problem. The CLI prints ``dslm: error: <message>`` and exits with
status 2 instead of showing a traceback.
"""


class DSLMError(Exception):
    """Base class of every error dslm reports to a user."""


class ConfigError(DSLMError, ValueError):
    """An unknown config key, a value of the wrong type, or a value out of range."""


class CheckpointError(DSLMError):
    """A checkpoint that is missing, corrupt, of the wrong kind or mismatched."""


class DataError(DSLMError):
    """A missing, empty or unreadable corpus or data file."""


class TrainingError(DSLMError):
    """Training cannot go on (e.g. a non-finite loss)."""


class SamplingError(DSLMError):
    """A sampler that does not fit the model, or bad sampling arguments."""


def first_line(e: BaseException, limit: int = 0) -> str:
    """The first line of an exception's message (its class name when it has none),
    cut to ``limit`` characters when ``limit`` > 0."""
    text = str(e).splitlines()[0] if str(e).strip() else e.__class__.__name__
    return text[:limit] if limit > 0 else text
