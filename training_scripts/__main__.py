"""``python -m training_scripts ...`` is the ``qfl-gym`` command."""

import sys

from training_scripts.cli import main

sys.exit(main())
