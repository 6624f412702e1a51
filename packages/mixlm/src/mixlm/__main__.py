from mixlm.cli import main

raise SystemExit(main())
