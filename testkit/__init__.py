"""The helpers tests and benchmarks share, each written once.

- `procs`: processes and mounts read from /proc (children, descendants, by name or argv)
- `leftovers`: what a test session may leave behind (rclone, FUSE mounts, temp folders)
- `watch`: sampling child processes while vmafx runs (argv, environment, bytes written, peak RSS)
- `s3server`: a real S3 server in a container, and the rclone environment that reaches it
- `rclone`: a config-less rclone with local remotes
- `media`: clips made by the real ffmpeg, raw sources in S3, the bare libvmaf score
- `alignment_media`: tiny clips in every container and their hand-paired truth
- `cli`: running the real `vmafx` CLI in a child process

Not part of the vmafx wheel; importable from the repository root (pytest, `python -m benchmarks`).
"""
