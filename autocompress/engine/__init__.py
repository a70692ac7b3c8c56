"""The shared compression engine. It imports neither optuna nor mlflow and never prints."""
