"""`python -m locateanything_native` runs the CLI."""
import sys

from .cli import main

sys.exit(main())
