"""widelab-lm-hallucination: Language models trained on a knowledge graph."""

__version__ = "0.1.0"
__all__ = ["__version__"]
