"""``python -m services.meta_fetcher``: see ``services.meta_fetcher.server``."""

import sys

from services.meta_fetcher.server import main

sys.exit(main())
