from uc_tasks.leaderboard import main

raise SystemExit(main())
