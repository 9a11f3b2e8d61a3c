"""Data: sources (image folders, .npy/.npz, callables, synthetic), and feeding them in batches that fit the input specs."""
