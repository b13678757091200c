"""``python -m xtrader.simulator`` = ``xtrader simulate``."""

import sys

from .cli import main

sys.exit(main(sys.argv[1:]))
