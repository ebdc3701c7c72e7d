"""The learner: strategy, optimisation loop, checkpoints, summaries, periodic work (triggers)."""
