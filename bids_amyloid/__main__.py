from bids_amyloid.cli import main

raise SystemExit(main())
