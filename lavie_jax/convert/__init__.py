"""PyTorch → NNX weight conversion: renaming and transposing per model family."""
