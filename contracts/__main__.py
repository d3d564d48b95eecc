"""`python -m contracts`: one command line, subcommands registered by their own modules."""

import sys

from contracts.cli import main

if __name__ == "__main__":
    sys.exit(main())
