from samic_vos.cli import main

raise SystemExit(main())
