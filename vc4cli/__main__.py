"""python -m vc4cli: the `vc4` command."""

import sys

from . import main

sys.exit(main())
