"""Stages of a recipe. Each is a plain function `stage(config, run_dir, ...) -> outputs on disk` that runs the same
with or without Ray, and resumes from its own checkpoints when asked to."""
