"""Stage 7, study: presets and the one-command, resumable reproduction of the whole study."""
