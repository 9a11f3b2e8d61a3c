"""Bundles: the typed manifest and its schema, the atomic writer, verification, and the human report."""
