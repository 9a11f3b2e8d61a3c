"""The built-in realisers (registered in pyproject.toml under ``compressor.realisers``, as a plugin's would be)."""
