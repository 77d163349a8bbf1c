"""hotline: the application (CLI, config, storage, call control, HTTP API, metrics)."""

__version__ = "0.1.0"
