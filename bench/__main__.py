"""``python -m bench``: every benchmark, printed with ratios; see bench/run.py."""

import sys

from bench.run import main

sys.exit(main())
