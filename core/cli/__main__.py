"""`python -m unlearn_studio.core.cli`: the same as the `unlearn-studio` command."""

import sys

from unlearn_studio.core.cli.main import main

sys.exit(main())
