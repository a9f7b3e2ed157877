from course_grading.cli import main

raise SystemExit(main())
