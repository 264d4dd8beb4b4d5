"""Stage 2, weights: the embedded default model and finetuned checkpoints (manifests, verification, loading)."""
