"""`python -m classifier`."""

import sys

from classifier.cli import main

if __name__ == "__main__":
    sys.exit(main())
