"""vmafx storage backend `rclone-mount`: remote inputs read through a private, read-only rclone FUSE mount."""
