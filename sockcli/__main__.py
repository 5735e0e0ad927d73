"""``python -m sockcli``: the command line."""

import sys

from sockcli.cli import main

sys.exit(main())
