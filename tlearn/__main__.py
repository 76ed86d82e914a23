"""``python -m tlearn …`` is the same as the ``tlearn`` command."""

import sys

from tlearn.cli import main

sys.exit(main())
