"""`python -m training.cli`: the same as `maximus-train`."""

import sys

from training.cli.main import main

sys.exit(main())
