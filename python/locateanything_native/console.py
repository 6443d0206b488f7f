"""What the command-line front ends print while a model loads: each stage's sentence on stderr, a
progress bar for the one-time quantisation when stderr is a terminal, and the load time at the end."""
from __future__ import annotations

import sys
from typing import TextIO


class LoadReporter:
    """A progress callback for `Engine(progress=...)` that writes to `stream` (stderr by default).

    Messages (what is happening, where the packed cache goes, roughly how long) are printed as lines;
    the "quantise" updates draw a bar on a terminal and print nothing otherwise."""

    def __init__(self, stream: TextIO | None = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar_open = False
        self._last = -1

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if stage == "quantise":
            if self.tty:
                filled = int(fraction * self.width + 0.5)
                pct = int(fraction * 100)
                if pct != self._last:
                    self._last = pct
                    self.stream.write(f"\r  [{'#' * filled}{'.' * (self.width - filled)}] {pct:3d}%")
                    self.stream.flush()
                    self._bar_open = True
            return
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False
        if message and stage != "open":
            self.stream.write(f"{message}\n")
            self.stream.flush()
