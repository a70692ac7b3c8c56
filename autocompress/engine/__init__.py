"""The shared compression engine. It imports neither optuna nor mlflow and never prints, and nothing of the
package above it: the layers above import the engine, never the other way round."""

__version__ = "0.1.0"  # the package's version (pyproject.toml says the same), recorded in every artifact
