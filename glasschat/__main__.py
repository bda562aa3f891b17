"""``python -m glasschat`` is the same as the ``glasschat`` command."""

import sys

from glasschat.cli import main

sys.exit(main())
