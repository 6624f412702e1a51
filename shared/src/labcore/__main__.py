import sys

from labcore.commands import main

sys.exit(main())
