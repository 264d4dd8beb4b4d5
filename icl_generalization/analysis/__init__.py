"""Stage 6, analysis: reading results, the leaderboard with plots and HTML, the paper's orderings, the CI gate."""
