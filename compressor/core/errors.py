"""The error family every user-facing failure belongs to.

Each message says what was wrong and what to do about it, in one line; the CLI prints it without a
traceback (``--debug`` shows one) and exits with the class's ``exit_code``.
"""

from __future__ import annotations

import os

#: set (to 1) by ``--debug`` and by the test suite: an exception from outside the error family (an SDK bug, a library
#: crash) is raised where it happens, never turned into a row's "failed" status
STRICT_ENV = "COMPRESSOR_STRICT"


def strict() -> bool:
    return os.environ.get(STRICT_ENV) == "1"


def first_line(exc: BaseException, limit: int = 300, empty: str | None = None) -> str:
    """The first line of an exception's message (libraries write pages), or its type name when it has none."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__ if empty is None else empty
    return text.splitlines()[0][:limit]


class CompressorError(Exception):
    """Base class: a problem the user can fix, reported in one line."""

    exit_code = 2

    def __init__(self, message: object = "", *args: object):
        # one line, even when the message quotes user text with line breaks in it
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"), *args)


class InputError(CompressorError):
    """Bad input: a missing or corrupt file, a wrong shape, an unknown option value."""


class CheckpointError(InputError):
    """A checkpoint that cannot be read or does not fit its architecture."""


class UntrustedCheckpointError(CheckpointError):
    """A pickled checkpoint the user has not agreed to unpickle."""


class DataError(InputError):
    """Calibration or evaluation data that cannot be read or does not match the input spec."""


class RecipeError(InputError):
    """A recipe file that cannot be read or does not follow the schema."""


class TargetError(CompressorError):
    """An unknown target, or one this machine cannot build or run."""


class ExportError(CompressorError):
    """The model could not be exported to the target's format."""


class GateError(CompressorError):
    """The artifact was built but failed its accuracy gate."""

    exit_code = 3


class VerificationError(CompressorError):
    """A bundle failed verification: a file changed or the outputs drifted."""

    exit_code = 4
