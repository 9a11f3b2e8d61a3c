"""The built-in compression passes (see compressor/quantization/pipeline.py), registered in pyproject.toml under
``compressor.passes`` as a plugin's would be."""
