"""Architectures shipped with the SDK, usable as ``--arch compressor.zoo.<module>:<callable>``.

They exist so the bundled examples (EfficientNet-Lite0 with its real ImageNet weights, a small
Fashion-MNIST CNN) have an architecture to load their state_dicts into.
"""
