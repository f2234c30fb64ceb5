"""widelab-bayes: Wide Bayesian neural networks."""

__version__ = "0.1.0"
__all__ = ["__version__"]

# --- issue 5 exports (owned by the approx engineer) ---
# --- end issue 5 ---
