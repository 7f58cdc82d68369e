from edgeslm.cli import main

raise SystemExit(main())
