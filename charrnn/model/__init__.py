"""The network and its files: the CharRNN module, the textbook cell steps, the model file."""
