"""``python -m services.meta_sandbox``: see ``services.meta_sandbox.runner``."""

import sys

from services.meta_sandbox.runner import main

sys.exit(main())
