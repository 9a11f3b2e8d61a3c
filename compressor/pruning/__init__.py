"""Structured pruning (channels, attention heads) on Torch-Pruning, recovery fine-tuning, and a pruned
checkpoint format that reloads with plain ``--arch`` + the file."""
