"""Import shim: the official processor imports cv2 for video/LMDB inputs the benchmark never uses."""
