import sys

from itinera.cli import main

sys.exit(main())
