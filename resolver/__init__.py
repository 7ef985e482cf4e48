"""Hearth's DNS engine and appliance core."""

__version__ = "0.1.0"
