"""Autograding with verdicts the student's kernel cannot forge: `JudgedExecute`, nbgrader's Execute
step with a sandboxed kernel and a judge beside it.

For each graded test cell, the judge (a thread of the grading process, outside the sandbox) expects
the hidden checks that the cell's original source names. While the cell runs, the kernel's
`hidden_check(...)` connects to the judge's socket; the judge runs the check there, calling the
student's functions through requests (course_grading.pipeline.remote). When the cell ends, any expected
check that did not pass (or never ran) becomes an error output of the cell, whatever the kernel
printed, so nbgrader scores the cell 0. A kernel that dies or stops answering is replaced: the
notebook's earlier cells are replayed in a fresh kernel and grading goes on with the next cell.
What went wrong is written to `incidents_dir/<student>/<unit>.json` for grades.csv.
"""
import ast
import contextlib
import copy
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async
from nbformat import NotebookNode
from traitlets import Bool, Enum, Integer, Unicode

from course_grading.pipeline import remote, sandbox, warm
from course_grading import samples
from course_utils import wire
from nbgrader.preprocessors import Execute


def _hidden_check_calls(source):
    """The calls hidden_check("unitNN.check_x", ...) in a test cell's source."""
    return [node for node in ast.walk(remote._parse(source))
            if isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) == "hidden_check"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)]


def hidden_checks_in(source):
    """Names of the hidden checks a test cell's source calls: hidden_check("unitNN.check_x", ...)."""
    return [node.args[0].value for node in _hidden_check_calls(source)]


def diagnosis_code(source, names):
    """Code that runs the hidden checks `names` of a test cell once more, for their messages only: after
    a visible check stopped the cell, the student still learns the cause (the cell already scores 0)."""
    calls = [node for node in _hidden_check_calls(source) if node.args[0].value in names]
    if not calls:
        return ""
    lines = ["import course_utils.judge as _course_judge"]
    for node in calls:
        args = ", ".join(ast.unparse(arg) for arg in node.args)
        lines += ["try:", f"    _course_judge.hidden_check({args})", "except Exception:", "    pass"]
    return "\n".join(lines + ["del _course_judge"])


SKIPPED = ("{check}: further checks were skipped because a check above failed; this cell earns no points "
           "until it passes.")
NOT_REACHED = ("{check}: the hidden check never reached the grader, although the cell ran to its end (the "
               "call to the grader was changed or replaced); this cell earns no points.")
DIAGNOSIS = ("{check}: a check above failed, so this cell earns no points. The hidden checks, run for their "
             "advice only, say: {message}")
DIAGNOSIS_PASSED = ("{check}: a check above failed, so this cell earns no points; the hidden checks, run for "
                    "their advice only, found nothing more to report.")


def _stopped_by_error(cell):
    """The error output that stopped a test cell, or None."""
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)


def relative_paths(cell):
    """Error tracebacks name files relative to the course, not by this machine's absolute paths."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            output["traceback"] = [line.replace(_COURSE_PREFIX, "") for line in output.get("traceback", [])]


_COURSE_PREFIX = str(Path(wire.__file__).resolve().parent.parent) + os.sep


class _Cell:
    def __init__(self, grade_id, checks, sources):
        self.grade_id, self.checks, self.sources = grade_id, checks, sources
        self.verdicts = {}


class Judge:
    """Runs the hidden checks of one notebook for the requests of its (sandboxed) kernel."""

    def __init__(self, path):
        self.path = str(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        os.chmod(self.path, 0o777)
        self.server.listen(8)
        self.lock = threading.Lock()
        self.cell = None
        self.incidents = []
        threading.Thread(target=self._serve, daemon=True).start()

    def begin_cell(self, grade_id, checks, sources):
        with self.lock:
            self.cell = _Cell(grade_id, checks, sources)

    def end_cell(self):
        """{check: verdict} of the cell that just ran (checks still running then count as not run)."""
        with self.lock:
            cell, self.cell = self.cell, None
            return dict(cell.verdicts) if cell else {}

    def close(self):
        self.server.close()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                try:
                    self._handle(conn)
                except Exception as error:  # noqa: BLE001 - a broken connection costs that check only
                    self.incidents.append(f"a connection to the judge failed ({type(error).__name__})")

    def _handle(self, conn):
        conn.settimeout(30)
        message, buffers = wire.receive(conn)
        begin = message.get("req", {})
        name = str(begin.get("check", ""))[:100]
        with self.lock:
            cell = self.cell
        if cell is None or name not in cell.checks or name in cell.verdicts:
            where = f"in cell {cell.grade_id}" if cell else "outside a test cell"
            self.incidents.append(f"the notebook asked the judge for check {name!r} {where} (not allowed)")
            wire.send(conn, {"rep": {"passed": False, "message": "this hidden check may not run here"}})
            return
        channel = remote.SocketChannel(conn, cell.sources)
        try:
            objects = wire.decode(begin["objects"], buffers, channel.object_of)
            verdict = remote.run(name, channel, objects)
        except Exception as error:  # noqa: BLE001 - malformed objects from the kernel
            verdict = {"passed": False, "message": f"the grader could not run {name} ({type(error).__name__})"}
        with self.lock:
            if self.cell is cell:
                cell.verdicts[name] = verdict
        wire.send(conn, {"rep": verdict})


class SandboxedKernelManager:
    """Mixed into the kernel manager class: the kernel command runs in the sandbox (or just beside the judge)."""

    def format_kernel_cmd(self, extra_arguments=None):
        command = super().format_kernel_cmd(extra_arguments)
        if os.path.exists(self.connection_file):
            os.chmod(self.connection_file, 0o644)
        command = [*command, *warm.KERNEL_ARGS]
        env = {"COURSE_JUDGE": self.judge_path, **self.kernel_env}
        if not self.sandboxed:
            return ["env", *(f"{k}={v}" for k, v in env.items()), *command]
        return sandbox.command(self.folder, command, uid=self.uid, env=env, budget=self.budget)

    async def _async_wait(self, pollinterval=0.01):
        """A killed kernel is seen dead within 10 ms, not jupyter_client's 100 ms (once per notebook)."""
        await super()._async_wait(pollinterval)


class PromptKernelClient(AsyncKernelClient):
    """jupyter_client's kernel client, ready as soon as the kernel answers kernel_info and its IOPub is
    connected. jupyter_client's own then waits for 0.2 s of silence on IOPub, on every kernel start; nbclient
    does not need that: it takes only the messages its own requests caused."""

    async def wait_for_ready(self, timeout=None):
        deadline = time.monotonic() + (timeout or float("inf"))
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
                if reply["msg_type"] == "kernel_info_reply":
                    await self.iopub_channel.get_msg(timeout=0.2)  # IOPub connected: it heard the kernel
                    self._handle_kernel_info_reply(reply)
                    return
            except Empty:
                pass
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")


class JudgedExecute(Execute):
    """nbgrader's Execute with a sandboxed kernel, judged hidden checks and kernel recovery."""

    sandboxed = Bool(True, help="Run the kernel in a bubblewrap sandbox (False only for trusted code)").tag(config=True)
    warm = Bool(True, help="Fork sandboxed kernels from this process's zygote (course_grading.pipeline.warm)").tag(config=True)
    memory_budget = Integer(sandbox.BUDGET["memory"], help="Bytes of memory a notebook's kernel may use, its "
                            "processes and /dev/shm together").tag(config=True)
    disk_budget = Integer(sandbox.BUDGET["disk"], help="Bytes of files a notebook's kernel may write "
                          "(its folder and /tmp)").tag(config=True)
    incidents_dir = Unicode("", help="Where to write what went wrong per notebook (JSON)").tag(config=True)
    output_limit = Integer(2_000_000, help="Characters of output kept per cell").tag(config=True)
    # a busy machine can deliver a cell's last outputs late: wait longer, and never fail the notebook for it
    iopub_timeout = Integer(20).tag(config=True)
    raise_on_iopub_timeout = Bool(False).tag(config=True)
    # a graded kernel is killed, not asked to shut down (0.2 s a notebook): its outputs are in, and its
    # sandbox is emptied after it anyway
    shutdown_kernel = Enum(["graceful", "immediate"], default_value="immediate").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        resources = resources or {}
        self.incidents = []
        self.uid = sandbox.sandbox_uid() if self.sandboxed else None
        self.budget = {"memory": self.memory_budget, "disk": self.disk_budget}
        self.zygote = warm.zygote(self.uid, self.budget) if self.sandboxed and self.warm else None
        with contextlib.nullcontext(self.zygote.fresh_folder()) if self.zygote else \
                tempfile.TemporaryDirectory(prefix="cg-") as folder:
            folder = Path(folder)
            submission = resources.get("metadata", {}).get("path") or os.getcwd()
            sandbox.prepare_folder(folder, submission, self.uid)
            self.folder = folder
            self.judge = Judge(folder / "judge.sock")
            try:
                self._run_all(nb, resources)
            finally:
                self.judge.close()
                if self.zygote:
                    self.zygote.fresh_folder()  # nothing of this notebook keeps running or lying around
        self.incidents += self.judge.incidents
        self._write_incidents(resources)
        return self.nb, self.resources

    def create_kernel_manager(self):
        base = self.kernel_manager_class
        manager_class = type("SandboxedKernel", (SandboxedKernelManager, base), {})
        self.km = manager_class(kernel_name=self.kernel_name or "python3", config=self.config,
                                client_class=f"{__name__}.PromptKernelClient",
                                transport="ipc", ip=str(self.folder / "ipc" / "k"),
                                connection_file=str(self.folder / "kernel.json"))
        self.km.folder, self.km.uid, self.km.budget = self.folder, self.uid, self.budget
        self.km.judge_path, self.km.sandboxed = self.judge.path, self.sandboxed
        self.km.kernel_env = {"COURSE_OUTPUT_LIMIT": str(self.output_limit)}  # read by course_utils.judge
        if self.zygote:
            self.km.zygote = self.zygote
            self.km.provisioner = warm.WarmProvisioner(kernel_id=self.km.kernel_id, parent=self.km,
                                                       kernel_spec=self.km.kernel_spec)
        return self.km

    def _run_all(self, nb, resources):
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, None)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self.output_sizes = {}
        self.executed = set()
        self.killers = set()  # cells that stopped a kernel: not replayed
        start = 0
        while start < len(self.nb.cells):
            start = self._run_from(start, resources)
        for index, cell in enumerate(self.nb.cells):  # a test cell that never ran earns nothing
            if samples.is_test(cell) and index not in self.executed:
                cell.outputs = [_error("NotRun", "This test cell did not run: the notebook's kernel failed "
                                                 "before it (see the cells above).")]

    def _run_from(self, start, resources):
        """Run cells from `start` in a fresh kernel (replaying earlier code cells); the next start."""
        self.km, self.watchdog = None, None
        try:
            with self.setup_kernel():
                if self.sandboxed:
                    outermost = self.zygote.process.pid if self.zygote else self.km.provisioner.process.pid
                    self.watchdog = sandbox.Watchdog(outermost, self.folder, self.budget)
                    self.watchdog.start()
                info = self.wait_for_reply(self.kc.kernel_info())
                self.nb.metadata["language_info"] = info["content"]["language_info"]
                self._replay(start)
                for index in range(start, len(self.nb.cells)):
                    cell = self.nb.cells[index]
                    try:
                        self.preprocess_cell(cell, resources, index)
                    except (DeadKernelError, CellTimeoutError, RuntimeError) as error:
                        if self._exceeded():
                            return self._over_budget(cell, index, self._exceeded())
                        self._lost_kernel(cell, index, error)
                        return index + 1
                    if self._exceeded() or self._disk_full(cell):
                        return self._over_budget(cell, index, self._exceeded() or
                                                 f"disk budget ({sandbox.size(self.budget['disk'])})")
                    if self._timed_out and not self._responsive():
                        self._lost_kernel(cell, index, "it ignored the interrupt after the time limit")
                        return index + 1
        except (DeadKernelError, RuntimeError) as error:  # died while shutting down or replaying
            why = f"it went over its {self._exceeded()}" if self._exceeded() else \
                f"{type(error).__name__}: {str(error)[:100]}"
            self.incidents.append(f"the kernel failed ({why})")
        finally:
            if self.watchdog:
                self.watchdog.stop()
        return len(self.nb.cells)

    def _exceeded(self):
        return self.watchdog.exceeded if self.watchdog else ""

    @staticmethod
    def _disk_full(cell):
        return any(o.get("ename") == "OSError" and "No space left on device" in str(o.get("evalue"))
                   for o in cell.get("outputs", []))

    def _over_budget(self, cell, index, budget):
        """Stop the notebook where `cell` went over a budget: the cells after it are not run."""
        what = samples.grade_id(cell) or f"cell {index + 1}"
        self.incidents.append(f"{what} went over the notebook's {budget}: the cells after it were not run")
        cell.outputs = list(cell.get("outputs", [])) + [_error(
            "BudgetExceeded", f"This cell went over the notebook's {budget}: its kernel was stopped and "
                              "the cells after it were not run.")]
        if samples.is_test(cell):
            self.judge.end_cell()
        return len(self.nb.cells)

    def _replay(self, upto):
        """Re-run the earlier non-test code cells in a fresh kernel, their outputs discarded."""
        for index in range(upto):
            cell = self.nb.cells[index]
            if cell.cell_type == "code" and not samples.is_test(cell) and index not in self.killers:
                try:
                    self.execute_cell(copy.deepcopy(cell), index, store_history=False)
                except CellTimeoutError:
                    self.incidents.append(f"replaying cell {index + 1} in a fresh kernel timed out")

    def _lost_kernel(self, cell, index, error):
        self.killers.add(index)
        what = samples.grade_id(cell) or f"cell {index + 1}"
        reason = error if isinstance(error, str) else ("the kernel died" if isinstance(error, DeadKernelError)
                                                       else "the kernel stopped responding")
        self.incidents.append(f"{what} stopped the kernel ({reason}); later cells ran in a fresh kernel")
        cell.outputs = list(cell.get("outputs", [])) + [_error(
            "KernelLost", f"This cell stopped the notebook's kernel ({reason}). The cells after it were "
                          "graded in a fresh kernel.")]
        if samples.is_test(cell):
            self.judge.end_cell()

    async def _async_check_alive(self):
        """Dead when the sandbox's process ended, not only when the heartbeat stops."""
        if not await ensure_async(self.km.is_alive()):
            raise DeadKernelError("Kernel died")
        await super()._async_check_alive()

    def _responsive(self):
        """Whether the kernel answers within 10 s after an interrupted cell (one that ignores SIGINT won't)."""
        timeout, self.timeout = self.timeout, 10
        try:
            reply = self.wait_for_reply(self.kc.execute("pass", silent=True, store_history=False))
            return reply is not None and reply["content"].get("status") == "ok"
        except Exception:  # noqa: BLE001 - dead or deaf: either way, replace it
            return False
        finally:
            self.timeout = timeout

    def preprocess_cell(self, cell, resources, index):
        checks = hidden_checks_in(cell.source) if samples.is_test(cell) else []
        if checks:
            sources = [c.source for c in self.nb.cells[:index] if c.cell_type == "code"]
            self.judge.begin_cell(samples.grade_id(cell), checks, sources)
        self._timed_out = False
        self.executed.add(index)
        cell, resources = super().preprocess_cell(cell, resources, index)
        if any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", [])):
            self._timed_out = True
            what = samples.grade_id(cell) or f"cell {index + 1}"
            self.incidents.append(f"{what} ran past the {self.timeout} s time limit (interrupted)")
        if checks:
            verdicts = self.judge.end_cell()
            stopped = _stopped_by_error(cell)
            missing = [name for name in checks if name not in verdicts]
            diagnoses = {}
            if missing and stopped is not None and not self._timed_out:
                diagnoses = self._diagnose(cell, index, missing)
            self._enforce(cell, checks, verdicts, stopped is not None, diagnoses)
        relative_paths(cell)
        self._note_limits(cell, index)
        return cell, resources

    def _diagnose(self, cell, index, names):
        """{check: verdict} of the hidden checks `names`, run again after a visible check stopped the cell."""
        code = diagnosis_code(cell.source, names)
        if not code:
            return {}
        sources = [c.source for c in self.nb.cells[:index] if c.cell_type == "code"]
        self.judge.begin_cell(samples.grade_id(cell), names, sources)
        timeout, self.timeout = self.timeout, 60
        try:
            reply = self.wait_for_reply(self.kc.execute(code, silent=True, store_history=False))
        finally:
            self.timeout = timeout
        verdicts = self.judge.end_cell()
        if reply is None and not self._responsive():
            raise DeadKernelError("the kernel stopped answering while the hidden checks diagnosed the cell")
        return verdicts

    def _note_limits(self, cell, index):
        """Name the cell when one of the sandbox's limits stopped it."""
        for output in cell.get("outputs", []):
            message = {"MemoryError": "ran out of memory (the sandbox allows "
                                      f"{sandbox.size(self.budget['memory'])} per process)",
                       "BlockingIOError": "hit the sandbox's limit on processes"}.get(output.get("ename"))
            if message:
                self.incidents.append(f"{samples.grade_id(cell) or f'cell {index + 1}'} {message}")

    def _enforce(self, cell, checks, verdicts, stopped, diagnoses):
        """Add the judge's failures to the cell's outputs (nbgrader then scores it 0); after a failed visible
        check, the hidden checks' diagnosis instead (the cell already scores 0)."""
        problems = []
        for name in checks:
            verdict, check = verdicts.get(name), name.split(".")[-1]
            if verdict is None and name in diagnoses:
                diagnosis = diagnoses[name]
                problems.append(DIAGNOSIS_PASSED.format(check=check) if diagnosis["passed"] else
                                DIAGNOSIS.format(check=check, message=diagnosis["message"]))
            elif verdict is None:
                problems.append((SKIPPED if stopped else NOT_REACHED).format(check=check))
            elif not verdict["passed"]:
                problems.append(verdict["message"])
        if not problems:
            return
        message = "\n".join(problems)
        shown = any(o.get("output_type") == "error" and o.get("evalue") == message for o in cell.outputs)
        if not shown:
            cell.outputs.append(_error("CheckFailed", message))

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(str(content.get("text", ""))) + sum(len(str(v)) for v in content.get("data", {}).values())
        total = self.output_sizes.get(cell_index, 0) + size
        self.output_sizes[cell_index] = total
        if total > self.output_limit:
            if total - size <= self.output_limit:
                what = samples.grade_id(self.nb.cells[cell_index]) or f"cell {cell_index + 1}"
                self.incidents.append(f"{what} printed more than {self.output_limit:,} characters (cut)")
                outs.append(NotebookNode(output_type="stream", name="stdout",
                                         text=f"\n[output cut after {self.output_limit:,} characters]\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)

    def _write_incidents(self, resources):
        info = resources.get("nbgrader", {})
        if not self.incidents_dir or not info.get("student"):
            return
        path = Path(self.incidents_dir) / info["student"] / f"{info.get('assignment', 'unit')}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"incidents": self.incidents, "sandboxed": self.sandboxed}, indent=1))


def _error(ename, message):
    return NotebookNode(output_type="error", ename=ename, evalue=message,
                        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {message}"])
