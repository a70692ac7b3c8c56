"""The search over the joint compression space (Optuna at this edge; the engine knows nothing of it)."""
