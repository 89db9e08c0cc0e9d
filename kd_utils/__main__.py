"""`python -m kd_utils teacher|distill|report ...`: the command line (kd_utils/cli.py)."""
import sys

from .cli import main

sys.exit(main())
