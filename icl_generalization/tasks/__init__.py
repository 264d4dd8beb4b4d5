"""Stage 3, tasks: the lm-eval task pack, the task options, in-context prompt budgeting and long-context sweeps."""
