"""The package's exception tree: every error we raise is a `PipelineError`.

Each class also subclasses the builtin it narrows, so callers that catch `ValueError` or
`OSError` keep working.
"""


class PipelineError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(PipelineError, ValueError):
    """A parameter or configuration value breaks a rule; the message names both."""


class TooFewError(ConfigError):
    """The data has too few rows (or distinct times) for what was asked of it, e.g. a split
    into three non-empty parts; the pipeline skips a layer whose units raise it."""


class SchemaError(PipelineError, ValueError):
    """Data does not fit the expected schema (a missing header, an unknown field)."""


class SourceError(PipelineError, OSError):
    """An input cannot be read: missing path, truncated or corrupt file, structural error."""


class UnsafePathError(PipelineError, OSError):
    """A path the package would read or write through is a link, or a file someone planted
    where only this process may create one; refused so nothing is read or written through it."""


class CheckpointError(PipelineError, RuntimeError):
    """Saved collection state is missing, inconsistent or belongs to another configuration."""


class NotSupportedError(PipelineError, NotImplementedError):
    """A feature that exists in the API but is not implemented yet."""


class NotFoundError(PipelineError, LookupError):
    """A named thing (model, version, alias, stage) does not exist; the message lists what does."""


class RegistryError(PipelineError, RuntimeError):
    """The model registry refuses a change (a version that exists, nothing to roll back to)."""


class TrainingError(PipelineError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says what to change."""
