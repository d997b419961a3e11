"""Training runs: starting and resuming them (session), the loop (trainer), the run
directory (rundir), training states (checkpoint), device and processes (runtime)."""
