"""The built-in runtime adapters: one module per runtime, each a ``compressor.core.backend.Backend``.

They are registered like any third-party backend, through the entry-point group ``compressor.backends``
in pyproject.toml, and found by :mod:`compressor.core.registry`; nothing imports this package by name.
Each module imports its runtime lazily and declares its targets in ``TARGETS``.
"""
