"""Training runs: the loop, the run directory, training states, device and processes."""
