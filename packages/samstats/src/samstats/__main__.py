from samstats.cli import main

raise SystemExit(main())
