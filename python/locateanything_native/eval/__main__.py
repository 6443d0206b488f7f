"""`python -m locateanything_native.eval [eval|metrics|prepare] ...` (eval when no command is named)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
