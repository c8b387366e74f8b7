"""vmafx storage backend `zip`: members of zip archives, served in place from a loopback HTTP server."""
