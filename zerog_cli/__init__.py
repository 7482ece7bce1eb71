"""zerog: the operator's command line for 0G Storage and 0G Compute."""

__version__ = "0.1.0"
