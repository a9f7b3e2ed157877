"""`course demo`: the instructor's whole pipeline on a sample class generated from source/."""
import copy
import csv
import shutil
import zipfile
from datetime import timedelta
from pathlib import Path

import nbformat

from course_grading import samples
from course_grading.banks import variants
from course_grading.course import ROOT, units as course_units


def _find(unit, *words, wrong=True):
    """The first bank variant of `unit` whose name has one of `words` (a wrong one unless wrong=False)."""
    for variant in variants(unit):
        if bool(variant.breaks) == wrong and any(w in variant.name.lower() for w in words):
            return variant
    return None


def _wrong(unit, index):
    """The index-th classic wrong answer of the unit's bank (skipping the broken-code entries)."""
    bugs = [v for v in variants(unit) if v.breaks and not any(
        w in v.name.lower() for w in ("exception", "raises", "loop", "nan", "shape"))]
    return bugs[index % len(bugs)] if bugs else None


def _edited_tests(nb):
    """A student who 'fixed' the tests: every visible test replaced by `pass`, answers left as stubs."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if samples.is_test(cell):
            cell.source = "pass  # the tests were in my way"
    return nb


def _deleted_test(nb):
    nb = copy.deepcopy(nb)
    first_test = next(i for i, c in enumerate(nb.cells) if samples.is_test(c))
    del nb.cells[first_test]
    del nb.metadata["kernelspec"]
    return nb


def sample_class(root=ROOT, only=()):
    """{student: {unit: notebook | raw text | None}}: one student per situation an instructor meets."""
    units = course_units(root, only)
    solved = {u: samples.student_notebook(root, u) for u in units}

    def one_change(unit, notebook):
        return {u: (notebook if u == unit else solved[u]) for u in units}

    def with_variant(unit, variant):
        return samples.student_notebook(root, unit, variant) if variant else solved[unit]

    first, second = units[0], units[min(1, len(units) - 1)]
    return {
        "ada_full_solution": dict(solved),
        "ben_unchanged_release": {u: samples.student_notebook(root, u, solved=False) for u in units},
        "cara_classic_bugs": {u: with_variant(u, _wrong(u, 0)) for u in units},
        "dan_more_bugs": {u: with_variant(u, _wrong(u, 1)) for u in units},
        "eve_exception": one_change(first, with_variant(first, _find(first, "exception", "raises"))),
        "finn_infinite_loop": one_change(second, with_variant(second, _find(second, "loop"))),
        "gus_edited_tests": one_change(first, _edited_tests(samples.student_notebook(root, first, solved=False))),
        "hana_malformed": one_change(first, '{"cells": [{"cell_type": "code", "source": "def perceptron'),
        "ivy_deleted_test": one_change(second, _deleted_test(solved[second])),
        "jon_missing_notebook": one_change(units[-1], None),
    }


def canvas_download(students, dest):
    """The sample class as Canvas hands it out (lib/content_zipper.rb): a "Download Submissions" zip,
    `sortablename_[LATE_]userid_attachmentid_filename`, and the gradebook export (the roster). Besides the
    notebooks: dan's work is marked LATE, eve's one submission holds her stub and, uploaded after it under
    the same name (Canvas adds `-1`), her solution; cara renamed hers, jon handed in a PDF for his
    missing one."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    units = sorted({u for work in students.values() for u in work})
    columns = [f"{u[:2]} {u[3:].replace('_', ' ').title()} ({7001 + i})" for i, u in enumerate(units)]
    blank = ["" for _ in units]
    files, attachment = {}, 50000

    def text(nb):
        return (nb if isinstance(nb, str) else nbformat.writes(nb)).encode()

    with open(dest / "canvas_gradebook_export.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *columns])
        writer.writerow(["    Points Possible", "", "", "", "", *blank])
        for number, (student, work) in enumerate(sorted(students.items()), start=1001):
            first, *last = student.split("_")
            last, first = " ".join(last).title(), first.title()
            writer.writerow([f"{last}, {first}", number, f"S{number}", student, "Section A", *blank])
            late = "LATE_" if student.startswith("dan") else ""
            prefix = f"{(last + first).replace(' ', '').lower()}_{late}{number}"
            for unit, nb in work.items():
                attachment += 1
                name = f"{unit}.ipynb"
                if nb is None:
                    files[f"{prefix}_{attachment}_{unit}.pdf"] = b"%PDF-1.4 my notebook, printed\n"
                    continue
                if student.startswith("cara") and unit == units[0]:
                    name = f"Copy of {unit} (1).ipynb"
                if student.startswith("eve") and unit == units[0]:
                    files[f"{prefix}_{attachment}_{name}"] = text(students["ben_unchanged_release"][unit])
                    attachment, name = attachment + 1, f"{unit}-1.ipynb"
                files[f"{prefix}_{attachment}_{name}"] = text(nb)
    with zipfile.ZipFile(dest / "submissions.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
    return dest / "submissions.zip", dest / "canvas_gradebook_export.csv"


def _moodle_duration(seconds):
    """Moodle's format_time (lib/moodlelib.php): the largest unit that is not zero and the next one if it
    is not ("2 days", "1 day 10 hours")."""
    parts = []
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "min"), (1, "sec")):
        count, seconds = divmod(int(seconds), size)
        parts.append(f"{count} {unit}{'s' * (count != 1)}" if count else "")
    first = next(i for i, part in enumerate(parts) if part)
    return " ".join(part for part in parts[first:first + 2] if part)


def moodle_download(students, dest, duedates):
    """The sample class as Moodle hands it out, per unit (mod/assign/classes/downloader.php): "Download all
    submissions" (folders `Full Name_participantid_assignsubmission_file/`, every entry dated when the zip
    was made, three days after the last due date) and "Download grading worksheet" (the submission times:
    a day before the due date, dan two days after it), and the course's grade export (the roster).
    Returns ([(zip, worksheet) per unit], roster)."""
    from course_grading.lms.moodle import clean_filename

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    units = sorted({u for work in students.values() for u in work})
    with open(dest / "moodle_grades_export.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["First name", "Last name", "ID number", "Email address",
                         *(f"Assignment: {u[:2]} {u[3:].replace('_', ' ').title()} (Real)" for u in units)])
        for student in sorted(students):
            first, *last = student.split("_")
            writer.writerow([first.title(), " ".join(last).title(), student, f"{first}@example.edu",
                             *("-" for _ in units)])
    downloaded = max(duedates[u] for u in units) + timedelta(days=3)
    downloads = []
    for index, unit in enumerate(units):
        archive_path, sheet_path = dest / f"{unit}.zip", dest / f"{unit}_worksheet.csv"
        with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive, \
                open(sheet_path, "w", newline="", encoding="utf-8-sig") as sheet:  # Spout writes a BOM
            worksheet = csv.writer(sheet, lineterminator="\n")
            worksheet.writerow(["Identifier", "Full name", "Email address", "Status", "Grade",
                                "Maximum Grade", "Grade can be changed", "Last modified (submission)",
                                "Last modified (grade)", "Feedback comments"])
            for number, (student, work) in enumerate(sorted(students.items())):
                first, *last = student.split("_")
                full_name = f"{first.title()} {' '.join(last).title()}"
                participant = 10000 + 100 * index + number  # Moodle's id differs per assignment
                folder = f"{clean_filename(full_name)}_{participant}_assignsubmission_file"
                nb = work.get(unit)
                name, data = (f"{unit}.pdf", "%PDF-1.4\n") if nb is None else (f"{unit}.ipynb", nb)
                archive.writestr(zipfile.ZipInfo(f"{folder}/{name}", downloaded.timetuple()[:6]),
                                 data if isinstance(data, str) else nbformat.writes(data))
                when = duedates[unit] + timedelta(days=2 if student.startswith("dan") else -1)
                shown = f"{when:%A}, {when.day} {when:%B %Y}, {int(when.strftime('%I'))}:{when:%M %p}"
                late = (when - duedates[unit]).total_seconds()  # gradingtable.php col_status
                status = "Submitted for grading" + (f" - {_moodle_duration(late)} late" if late > 0 else "")
                worksheet.writerow([f"Participant {participant}", full_name, f"{first}@example.edu",
                                    status, "", "10.00", "Yes", shown, "-", ""])
        downloads.append((archive_path, sheet_path))
    return downloads, dest / "moodle_grades_export.csv"


def run_demo(out, root=ROOT, jobs=2, progress=True, only=()):
    """build, write the sample class (of the units `only`, default all) as a Canvas download, collect it,
    grade it, export it for Canvas, verify; returns (report, verify problems)."""
    from course_grading.tools.build import generate_release
    from course_grading.pipeline.grading import grade_class, table
    from course_grading.lms.collect import REPORT, collect
    from course_grading.lms.export import export
    from course_grading.pipeline.late import duedates
    from course_grading.tools.verify import clean_notebook_problems, grading_problems, leak_problems
    from course_grading.tools.publish import publish
    from course_grading.pipeline.sandbox import available
    from course_grading.tools.report import write_report

    out = Path(out).resolve()
    print(f"1/4 regenerating release/ from source/ ({len(course_units(root))} units)")
    generate_release(Path(root) / "release", root)
    print("2/4 writing the sample class as a Canvas download and collecting it")
    submissions = out / "submissions"
    shutil.rmtree(submissions, ignore_errors=True)
    students = sample_class(root, only)
    download, roster = canvas_download(students, out / "canvas")
    moodle = moodle_download(students, out / "moodle", duedates(root))  # the same class, for Moodle
    for row in collect(download, "canvas", submissions, roster=roster, root=root):
        if row["placed"] != "yes" or row["reason"]:
            print(f"    {row['file']}: {'placed, ' if row['placed'] == 'yes' else ''}{row['reason']}")
    print(f"3/4 autograding {len(students)} students with {jobs} worker(s) into {out / 'grading'}, "
          "exporting for Canvas")
    why_not = available()
    if why_not:  # the sample class is written by this project, not by strangers
        print(f"notice: grading the sample class unsandboxed, since {why_not}")
    report = grade_class(submissions, out / "grading", jobs=jobs, root=root, only=only, progress=progress,
                         unsandboxed=bool(why_not))
    exported, notes = export(out / "grading", "canvas", roster, db_url=report.db_url, root=root)
    class_report = write_report(out / "grading", root)
    print("4/4 verifying the course (solutions full marks, stubs zero, clean notebooks, no leaks)")
    problems = grading_problems(report, "ada_full_solution", "ben_unchanged_release")
    problems += clean_notebook_problems(root)
    publish(out / "student-edition", root, force=True)  # demo/ is ours to rewrite
    problems += leak_problems(out / "student-edition", root)
    print()
    print(table(report))
    print("\n".join(f"note: {n}" for n in notes))
    print(f"collected: {submissions / REPORT}")
    print(f"for Canvas: {exported[0]} (Grades > Import), {exported[1]} (Assignment > Re-upload Submissions)")
    (first_zip, first_sheet), moodle_roster = moodle[0][0], moodle[1]
    print(f"the same class from Moodle (a zip and a grading worksheet per unit): course collect {first_zip} "
          f"--from moodle --roster {moodle_roster} --worksheet {first_sheet} --to DIR")
    print(f"student edition: {out / 'student-edition'}")
    print(f"what the class got wrong: {class_report}")
    return report, problems
