from bpseg.cli import main

raise SystemExit(main())
