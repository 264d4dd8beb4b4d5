"""Stage 5, training: recipes, training corpora, finetuning, and augmentation with in-context inferences."""
