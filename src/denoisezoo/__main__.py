import sys

from denoisezoo.cli import main

if __name__ == "__main__":  # not when a spawned worker process (denoise --jobs) imports it
    sys.exit(main())
