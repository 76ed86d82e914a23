"""``python -m tlearn …`` is the same as the ``tlearn`` command."""

import sys

from tlearn.cli import main

if __name__ == "__main__":
    sys.exit(main())
