"""`python -m kd_utils teacher|distill|report ...`: the command line (kd_utils/extras/cli.py)."""
import sys

from .extras.cli import main

sys.exit(main())
