"""``python -m mailctl``: the operator CLI (the ``mailctl`` script)."""

import sys

from mailctl.main import main

if __name__ == "__main__":
    sys.exit(main())
