"""python -m burnish"""

import sys

from burnish.cli import main

sys.exit(main())
