from srf.cli import main

raise SystemExit(main())
