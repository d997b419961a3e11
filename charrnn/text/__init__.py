"""Text handling, torch-free: the vocabulary, reading text files, preparing a corpus."""
