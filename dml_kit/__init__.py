"""dml_kit: a notebook-first teaching kit for deep metric learning and k-shot transfer."""

__version__ = "0.1.0"
