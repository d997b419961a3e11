"""The network and its files: the CharRNN module, the textbook cell steps and the
reference stepper built on them, the model file."""
