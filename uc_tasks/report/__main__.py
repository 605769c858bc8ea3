from uc_tasks.report import main

raise SystemExit(main())
