"""Stage 1, data: the record schema and fingerprints, the lexicon, the dataset families, their checkers and exports."""
