import sys

from denoisezoo.cli import main

sys.exit(main())
