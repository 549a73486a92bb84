"""Authority: a government's single source of trust for its online services."""

__version__ = "0.1.0"
