"""charrnn benchmarks; see BENCHMARKS.md for the commands and results."""
