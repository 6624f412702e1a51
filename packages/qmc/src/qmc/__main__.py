from qmc.cli import main

raise SystemExit(main())
