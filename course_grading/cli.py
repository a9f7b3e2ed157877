"""`course` / `python -m course_grading`: the instructor's commands, wrapping nbgrader (the instructor extra)."""
import argparse
import sys
from pathlib import Path


def _instructor():
    try:
        import nbgrader  # noqa: F401
    except ModuleNotFoundError as missing:
        sys.exit(f"`course` needs the instructor's tools: `pip install -e .[instructor]` ({missing}).")


def cmd_build(args):
    from course_grading.tools.build import generate_release
    from course_grading.course import ROOT

    files = generate_release(ROOT / "release", only=args.units)
    print("\n".join(f"release/{f}" for f in files))


def cmd_verify(args):
    from course_grading.tools.verify import verify

    problems = verify(jobs=args.jobs, only=args.units)
    for problem in problems:
        print(f"FAIL {problem}")
    print("course verified: solutions full marks, stubs zero, release in sync, notebooks clean, no leaks"
          if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_run(args):
    from course_grading.tools.runner import course_notebooks, run_notebooks, time_table

    runs = run_notebooks(course_notebooks(only=args.units))
    print(time_table(runs))
    return 1 if any(r.error for r in runs) else 0


def cmd_grade(args):
    from course_grading.pipeline.grading import GradingInterrupted, GradingRefused, grade_class, table

    try:
        report = grade_class(args.submissions, args.out, jobs=args.jobs, db_url=args.db, only=args.units,
                             unsandboxed=args.unsandboxed, scheduler=args.scheduler)
    except GradingRefused as error:
        print(f"course grade: {error}", file=sys.stderr)
        return 2
    except GradingInterrupted as stopped:
        print(f"course grade: {stopped}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before grading began
        print("course grade: interrupted; nothing was graded", file=sys.stderr)
        return 130
    print(table(report))
    return _report(report.out)


def _report(out, **settings):
    from course_grading.tools.report import ReportError, write_report

    try:
        print(f"report:    {write_report(out, **settings)}")
    except ReportError as error:
        print(f"course report: {error}", file=sys.stderr)
        return 2


def cmd_report(args):
    return _report(args.out, at_risk_below=args.at_risk_below, at_risk_missing=args.at_risk_missing)


def cmd_collect(args):
    from course_grading.lms.collect import REPORT, collect
    from course_grading.lms.common import LmsError, shown

    try:
        rows = collect(args.source, getattr(args, "from"), args.to, roster=args.roster, unit=args.unit,
                       timezone=args.timezone, worksheets=args.worksheet)
    except (LmsError, OSError) as error:
        print(f"course collect: {shown(error, 1000)}", file=sys.stderr)
        return 2
    for row in rows:
        if row["placed"] != "yes":
            print(f"not placed  {ascii(row['file'][:300])[1:-1]}: {shown(row['reason'])}")
    untimed = [row for row in rows if row["placed"] == "yes" and "late penalty not applied" in row["reason"]]
    if untimed:
        print(f"note: {len(untimed)} notebook(s) placed without a submission time, so with no late penalty "
              f"({shown(untimed[0]['reason'])})")
    placed = sum(row["placed"] == "yes" for row in rows)
    print(f"placed {placed} notebook(s) of {len(rows)} file(s) into {Path(args.to).resolve()}; "
          f"every file and why: {Path(args.to).resolve() / REPORT}")


def cmd_export(args):
    from course_grading.lms.common import LmsError, shown
    from course_grading.lms.export import export

    try:
        paths, notes = export(args.out, args.to, args.roster, db_url=args.db, units=args.units,
                              new_columns=args.new_columns, missing_as_zero=args.missing_as_zero)
    except (LmsError, OSError) as error:
        print(f"course export: {shown(error, 1000)}", file=sys.stderr)
        return 2
    print("\n".join([*(f"note: {shown(n)}" for n in notes), *map(str, paths)]))


def cmd_publish(args):
    from course_grading.tools.publish import (PublishRefused, check_can_commit, commit_edition, course_settings,
                                        publish)

    try:
        if args.commit:
            check_can_commit(args.dir)
        published = publish(args.dir, force=args.force, edition_url=args.edition_url)
    except PublishRefused as refused:
        print(f"course publish: {refused}", file=sys.stderr)
        return 2
    changes = (("added", published.added), ("changed", published.changed), ("removed", published.removed))
    for word, paths in changes:
        print("\n".join(f"{word:8} {p.as_posix()}" for p in paths) or f"{word:8} nothing")
    url = course_settings()["edition_url"] if args.edition_url is None else args.edition_url
    print(f"student edition: {len(published)} files in {Path(args.dir).resolve()} "
          f"({', '.join(f'{len(paths)} {word}' for word, paths in changes)}); "
          + (f"notebooks install the helpers from {url}" if url else
             "edition_url is not set ([tool.course] in pyproject.toml): in Colab the first cell explains "
             "how to get the helpers"))
    if args.commit:
        print(commit_edition(args.dir, published) or "nothing to commit")


def cmd_demo(args):
    from course_grading.tools.demo import run_demo

    _, problems = run_demo(args.out, jobs=args.jobs, only=args.units)
    for problem in problems:
        print(f"FAIL {problem}")
    return 1 if problems else 0


def cmd_bench(args):
    from course_grading.tools.bench import bench

    bench(students=args.students, jobs=args.jobs, only=args.units)


def parser():
    p = argparse.ArgumentParser(prog="course", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, function, text):
        c = sub.add_parser(name, help=text, description=text)
        c.set_defaults(function=function)
        return c

    command("build", cmd_build, "regenerate release/ from source/ (nbgrader generate_assignment)") \
        .add_argument("units", nargs="*", help="unit numbers or names (default: all)")
    verify = command("verify", cmd_verify, "solutions pass, stubs fail, release in sync, notebooks clean, no leaks")
    verify.add_argument("--jobs", type=int, default=2)
    verify.add_argument("--units", nargs="*", default=(), help="grade only these units' solutions and stubs "
                        "(the other checks cover the whole course)")
    command("run", cmd_run, "execute lecture and solved assignment notebooks with a time table") \
        .add_argument("units", nargs="*", help="unit numbers or names (default: all)")
    grade = command("grade", cmd_grade, "autograde SUBMISSIONS/<student>/<unit>/<unit>.ipynb in parallel")
    grade.add_argument("submissions", type=Path)
    grade.add_argument("--out", type=Path, default=Path("grading"), help="course folder for results (default grading/)")
    grade.add_argument("--jobs", type=int, default=2, help="workers of the local Dask cluster (default 2)")
    grade.add_argument("--scheduler", metavar="ADDRESS",
                       help="grade on this Dask scheduler's workers (tcp://host:8786) instead of locally")
    grade.add_argument("--db", help="gradebook URL (default: sqlite in OUT, or $NBGRADER_DB_URL)")
    grade.add_argument("--units", nargs="*", default=(), help="grade only these units")
    grade.add_argument("--unsandboxed", action="store_true",
                       help="grade even where kernels cannot be sandboxed (trusted submissions only)")
    report = command("report", cmd_report, "what the class got wrong: OUT/report.html (scores, commonest "
                     "mistakes per exercise, late work, what was not graded, students at risk), "
                     "OUT/mistakes.csv")
    report.add_argument("out", type=Path, help="the folder `course grade` wrote")
    report.add_argument("--at-risk-below", type=float, metavar="PERCENT",
                        help="at risk below this percent of the points (default: nbgrader_config.py's, 50)")
    report.add_argument("--at-risk-missing", type=int, metavar="N",
                        help="at risk with N units not graded (default: nbgrader_config.py's, 2)")
    collect = command("collect", cmd_collect, "an LMS download (zip, or folder) into "
                      "SUBMISSIONS/<student>/<unit>/ for `course grade`; what cannot be placed is listed in "
                      "SUBMISSIONS/collect_report.csv")
    collect.add_argument("source", type=Path, help="the LMS's zip of submissions (folder: --from folder)")
    collect.add_argument("--from", required=True, choices=("canvas", "moodle", "folder"),
                         help="canvas: Download Submissions; moodle: Download all submissions; folder: "
                         "nbgrader's exchange layout student+assignment+timestamp/")
    collect.add_argument("--roster", type=Path, help="the LMS's gradebook export (CSV): who the students are")
    collect.add_argument("--to", type=Path, required=True, help="the SUBMISSIONS folder to write")
    collect.add_argument("--unit", help="the unit the download is for: notebooks of another are not placed")
    collect.add_argument("--worksheet", type=Path, action="append", default=[],
                         help="Moodle: the assignment's grading worksheet (CSV), where the submission times "
                         "are; without it Moodle work gets no time and no late penalty (repeatable)")
    collect.add_argument("--timezone", default="UTC",
                         help="time zone of the worksheet's times: your Moodle profile's (default UTC)")
    export = command("export", cmd_export, "OUT's grades and feedback as the LMS imports them: "
                     "OUT/<lms>_grades.csv and OUT/<lms>_feedback.zip")
    export.add_argument("out", type=Path, help="the folder `course grade` wrote")
    export.add_argument("--to", required=True, choices=("canvas", "moodle"))
    export.add_argument("--roster", type=Path, required=True, help="the LMS's gradebook export (CSV)")
    export.add_argument("--db", help="gradebook URL (default: sqlite in OUT, or $NBGRADER_DB_URL)")
    export.add_argument("--units", nargs="*", default=(),
                        help="export these units (default: the units with a submission in OUT)")
    export.add_argument("--new-columns", action="store_true",
                        help="write units without a column in the roster too (new assignments in the LMS)")
    export.add_argument("--missing-as-zero", action="store_true",
                        help="write 0 for rostered students with nothing graded (default: no row)")
    publish = command("publish", cmd_publish, "write or update the student edition in DIR (nothing else in "
                      "DIR is touched; files the previous edition wrote and this one lacks are removed)")
    publish.add_argument("dir", type=Path)
    publish.add_argument("--force", action="store_true",
                         help="publish into a non-empty folder that is not a previous edition")
    publish.add_argument("--commit", action="store_true",
                         help="commit the edition's changes in DIR (a git repository)")
    publish.add_argument("--edition-url", help="where the edition lives, for its first cells and Colab links "
                         "(default: [tool.course] edition_url in pyproject.toml)")
    demo = command("demo", cmd_demo, "the whole pipeline on a generated sample class (the README's main job)")
    demo.add_argument("--out", type=Path, default=Path("demo"))
    demo.add_argument("--jobs", type=int, default=2)
    demo.add_argument("--units", nargs="*", default=(), help="a sample class of these units only (default: all)")
    bench = command("bench", cmd_bench, "time notebooks, autograding and the parallel speed-up")
    bench.add_argument("--students", type=int, default=4)
    bench.add_argument("--jobs", type=int, default=2)
    bench.add_argument("--units", nargs="*", default=())
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    _instructor()
    return args.function(args) or 0
