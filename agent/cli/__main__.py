"""``python -m webbo.agent.cli``: the ``webbo`` command."""

import sys

from webbo.agent.cli.main import main

sys.exit(main())
