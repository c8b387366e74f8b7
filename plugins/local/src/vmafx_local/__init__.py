"""vmafx storage backend for local files."""
