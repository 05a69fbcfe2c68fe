"""Start the sd35 studio page: ``python app.py`` (``--demo`` to try it offline, ``--help``)."""

import sys

from sd35.server import main

if __name__ == "__main__":
    sys.exit(main())
