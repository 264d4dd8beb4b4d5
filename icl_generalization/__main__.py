"""``python -m icl_generalization`` is ``icl-gen``."""

import sys

from icl_generalization.cli import main

sys.exit(main())
