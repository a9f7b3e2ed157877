"""`python -m course_grading`: the same as the `course` console script."""
from course_grading.cli import main

raise SystemExit(main())
