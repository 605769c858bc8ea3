"""UnsafeConcepts benchmark: data, prompts, scoring and metrics (the core imports without torch)."""

__version__ = "0.1.0"
