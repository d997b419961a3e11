"""Presentation without I/O: colour scales, terminal renderables, HTML pages, run summaries."""
