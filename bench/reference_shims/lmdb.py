"""Import shim: the official processor imports lmdb for video/LMDB inputs the benchmark never uses."""
