"""Run plumbing: checkpoints, run records, several processes, errors, real mode's places."""
