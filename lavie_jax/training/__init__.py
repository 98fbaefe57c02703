"""Pieces composed by ``lavie_jax/train.py``: state, optimizer, objectives, step, checkpoints, logs."""
