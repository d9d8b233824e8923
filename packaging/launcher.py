"""Entry point of the bundled app: the same `unlearn-studio` command (no arguments opens the app)."""

import sys

from unlearn_studio.core.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
