"""References to user code, written ``package.module:name`` (an architecture, a data function, a loss, a hook).

One resolver for all of them: the directory the command runs in is importable (user code usually sits
next to it), and a failure names the reference, what it was for, and what went wrong.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from compressor.core.errors import InputError


def is_ref(text: str) -> bool:
    """Whether ``text`` looks like ``package.module:name`` rather than a path."""
    return ":" in text and not text.startswith(("/", ".")) and not text[1:3] == ":\\"


def resolve(ref: str, what: str, error: type[InputError] = InputError) -> Any:
    """The object ``ref`` names; ``what`` says what it is for (in the error message)."""
    if ":" not in ref:
        raise error(f"cannot read {what} '{ref}': write package.module:name")
    module_name, _, name = ref.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise error(f"cannot load {what} '{ref}': cannot import '{module_name}' ({e}); check the module path and PYTHONPATH") from e
    obj = getattr(module, name, None)
    if obj is None:
        raise error(f"cannot load {what} '{ref}': module '{module_name}' has no '{name}'")
    return obj
