from dpbss.cli import main

raise SystemExit(main())
