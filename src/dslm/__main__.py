import sys

from dslm.cli import main

sys.exit(main())
