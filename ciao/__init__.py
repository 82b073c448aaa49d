"""Ciao: a Jupyter kernel whose cells are distributed training jobs."""

__version__ = "0.1.0"
