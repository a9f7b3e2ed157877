"""The instructor's tools behind `course`: build, verify, run, publish, demo, bench, quickcheck."""
