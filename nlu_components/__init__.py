"""Custom Rasa NLU components of the 12345 assistant (loaded by Rasa from config.yml)."""
