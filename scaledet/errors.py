"""The documented error classes. Every failure the library or the harness reports on purpose is one of these."""

from __future__ import annotations


class ScaleDetError(Exception):
    """Base class: the message says what went wrong, where (file, field) and what was expected."""


class ConfigError(ScaleDetError, ValueError):
    """A configuration value, key or name is invalid."""


class DataError(ScaleDetError, ValueError):
    """A dataset file (annotations, image, label file) is malformed."""


class WeightsUnavailableError(ScaleDetError, RuntimeError):
    """Model weights were requested but cannot be loaded; the message says how to supply them."""


class CheckpointError(ScaleDetError, RuntimeError):
    """A checkpoint is missing, truncated or does not fit the model."""
