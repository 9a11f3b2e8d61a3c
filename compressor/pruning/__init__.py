"""The pruning stage: structured pruning (channels, attention heads) on Torch-Pruning, and recovery fine-tuning.
Pruned checkpoints are written and read by compressor.io.pruned (they reload with plain ``--arch`` + the file)."""
