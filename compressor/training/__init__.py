"""Training loops shared by the stages: recovery fine-tuning after pruning and quantization-aware training."""
