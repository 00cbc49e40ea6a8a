"""``python -m redkit.cli``: the same as the ``redkit`` command."""

import sys

from redkit.cli import main

sys.exit(main())
