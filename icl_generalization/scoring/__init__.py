"""Stage 4, scoring: the lm-eval model class with its prefix key/value cache, the CLI bridge and the benchmark."""
