"""The error type for mistakes in user input, below every other kernel module (so
``registry`` and ``safe_io`` can both raise it without importing each other)."""

from __future__ import annotations


class UserInputError(ValueError):
    """A mistake in user input (scenario, CLI flag, file). Shown without a traceback."""
