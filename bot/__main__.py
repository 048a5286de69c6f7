"""`python -m bot` is the `paperwatch` command."""

import sys

from bot.cli import main

sys.exit(main())
