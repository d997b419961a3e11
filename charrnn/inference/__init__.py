"""Using a trained model: sampling, scoring, and what the model sees (analysis)."""
