"""othello-tui: look inside a transformer that learned to play Othello."""

__version__ = "0.1.0"
