"""Import shim: the official processor imports decord for video/LMDB inputs the benchmark never uses."""
