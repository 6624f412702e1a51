from archetypal_nmf.cli import main

raise SystemExit(main())
