"""The commands: the one option table, the recipe, compress, analyze, bench, the CLI and the Python API."""
