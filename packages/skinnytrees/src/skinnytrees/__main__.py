from skinnytrees.cli import main

raise SystemExit(main())
