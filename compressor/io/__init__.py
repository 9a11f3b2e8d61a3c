"""Getting models in and out: checkpoints and architectures, pruned checkpoints, ONNX and torch.export exporters."""
