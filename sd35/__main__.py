"""``python -m sd35 generate ...``: see ``sd35.cli``."""

import sys

from sd35.cli import main

sys.exit(main())
