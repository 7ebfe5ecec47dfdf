"""``python -m rewardgym`` is the ``rewardgym`` command."""

import sys

from .cli import main

sys.exit(main())
