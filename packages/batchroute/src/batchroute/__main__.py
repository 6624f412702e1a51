from batchroute.cli import main

raise SystemExit(main())
