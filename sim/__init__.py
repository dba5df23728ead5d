"""trainsim: discrete-event simulation of large-scale LLM training clusters."""

__version__ = "0.1.0"

__all__ = ["__version__"]
