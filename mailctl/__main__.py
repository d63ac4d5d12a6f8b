import sys

from mailctl.main import main

sys.exit(main())
