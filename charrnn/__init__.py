"""charrnn: character-level RNN, LSTM and GRU language models.

Importing the package is cheap; torch is imported only by the modules that need it.
"""

__version__ = "0.1.0"
