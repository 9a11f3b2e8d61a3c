"""The SDK's version: one definition, read by pyproject.toml (setuptools dynamic version) and every manifest."""

__version__ = "0.2.0"
