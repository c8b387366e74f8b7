"""vmafx storage backend `rclone-http`: remote inputs streamed through a loopback `rclone serve http`."""
