"""The pieces under grading isolation: the wire format, the judge's proxies and source checks, the sandbox."""
import os
import subprocess

import numpy as np
import pytest

from course_grading.pipeline import remote, sandbox
from course_grading import samples
from course_grading.course import ROOT
from course_grading.pipeline.grading import SandboxUnavailable, grade_class
from course_utils import wire
from course_utils.checks import CheckFailed
from tests.sandbox_modes import MODES, as_user


def roundtrip(value):
    buffers = []
    tree = wire.encode(value, lambda v: {"$ref": [1, type(v).__name__, None]}, buffers)
    return wire.decode(tree, buffers, lambda tree: ("ref", tree["$ref"][1]))


def test_plain_data_travels_and_everything_else_becomes_a_reference():
    rng = np.random.default_rng(5)
    value = {"a": np.arange(6.0).reshape(2, 3), "b": (1, 2.5, None, True, "x"), 3: [np.float32(1.5)], "rng": rng}
    back = roundtrip(value)
    assert np.array_equal(back["a"], value["a"]) and back["a"].dtype == np.float64
    assert back["b"] == value["b"] and back[3][0].dtype == np.float32
    assert back["rng"].random() == rng.random()

    class Liar(np.ndarray):
        def __eq__(self, other):
            return True
    assert roundtrip(np.zeros(3).view(Liar)) == ("ref", "Liar")
    assert roundtrip(object()) == ("ref", "object")
    assert roundtrip(np.array([object()])) == ("ref", "ndarray")


@pytest.mark.parametrize("tree, buffers", [
    ({"$nd": ["|O", [1], 0]}, [b"\x00" * 8]),         # object dtype
    ({"$nd": ["<f8", [1000], 0]}, [b"\x00" * 8]),     # size does not match its bytes
    ({"$rng": ["Evil", {}]}, []),
    ({"$pickle": "..."}, []),
    ({"$dict": [[[1, 2], 3]]}, []),                  # unhashable key
])
def test_malformed_values_are_refused(tree, buffers):
    with pytest.raises(wire.WireError):
        wire.decode(tree, buffers, lambda t: (_ for _ in ()).throw(wire.WireError("ref")))


def test_oversized_messages_are_refused():
    import socket
    import struct
    a, b = socket.socketpair()
    a.sendall(struct.pack("!Q", wire.MAX_MESSAGE + 1))
    with pytest.raises(wire.WireError):
        wire.receive(b)


def test_in_place_changes_come_back_and_proxies_call_back():
    def student(x, state, rng, f):
        x[0] = 99.0
        state["count"] = state.get("count", 0) + 1
        rng.random()
        return f(x) * 2
    channel = remote.LocalChannel()
    fn = channel.proxy(student)
    x, state, rng = np.zeros(3), {}, np.random.default_rng(1)
    twin = np.random.default_rng(1)
    twin.random()
    assert fn(x, state, rng, lambda v: float(v.sum())) == 198.0
    assert x[0] == 99.0 and state == {"count": 1} and rng.random() == twin.random()


def test_numpy_only_and_definitions_come_from_the_source():
    sources = ["import numpy as np\nimport torch\nfrom torch import nn as N\nT = torch",
               "def good(x):\n    return np.exp(x)\n\ndef bad(x):\n    return torch.exp(x)\n",
               "def sneaky(x):\n    return N.functional.relu(x)\n\ndef alias(x):\n    return T.tanh(x)\n",
               "def dynamic(x):\n    return __import__('to' + 'rch').exp(x)\n"]
    assert remote.find_definition(sources, "missing") is None
    assert remote.torch_uses(sources, remote.find_definition(sources, "good")) == []
    for name in ("bad", "sneaky", "alias", "dynamic"):
        assert remote.torch_uses(sources, remote.find_definition(sources, name)), name
    channel = remote.SocketChannel(None, sources)
    with pytest.raises(CheckFailed, match="numpy only"):
        channel.vet(None, "bad", numpy_only=True)
    with pytest.raises(CheckFailed, match="must be defined"):
        channel.vet(None, "missing", numpy_only=False)


def test_only_unit_checks_can_be_named():
    for name in ("os.system", "unit01.__builtins__", "harness.require_own", "unit01.student_call"):
        with pytest.raises(CheckFailed):
            remote.resolve_check(name)


def test_what_a_check_prints_goes_to_the_students_cell(monkeypatch, capsys):
    from course_utils.judge import hidden_check

    def check_with_a_note(f):
        print("note: only part of this was checked")
        if f(1) != 2:
            raise CheckFailed("f(1) should be 2")

    monkeypatch.setattr(remote, "resolve_check", lambda name: check_with_a_note)
    channel = remote.LocalChannel()
    verdict = remote.run("unit06.check_x", channel, [channel.proxy(lambda x: 2 * x)])
    assert verdict == {"passed": True, "message": "", "notes": "note: only part of this was checked\n"}
    assert capsys.readouterr().out == "", "the note went to the grader's own output"
    with pytest.raises(CheckFailed, match="should be 2"):
        hidden_check("unit06.check_x", lambda x: 3 * x)
    assert "only part of this was checked" in capsys.readouterr().out


@pytest.mark.skipif(bool(sandbox.available()), reason=f"no sandbox here: {sandbox.available()}")
@pytest.mark.parametrize("mode", MODES)
def test_sandbox_sees_its_folder_only(mode, monkeypatch):
    """A cold kernel's sandbox: the submission's copy and nothing of the grader; only /tmp (a tmpfs of the
    disk budget's size), /dev/shm and its folder of sockets are writable."""
    import sys
    import tempfile

    probe = ("import os, shutil\nprint(sorted(os.listdir('.')))\n"
             "for p in [%r, %r, '/root/.ssh']:\n    print(os.path.exists(p))\n"
             "import course_utils\ntry:\n    import course_grading\n    print('grader visible')\nexcept ImportError:\n"
             "    print('grader hidden')\nwritable = []\n"
             "folder = os.path.dirname(os.environ['COURSE_JUDGE'])\n"
             "for place in ['/', '/dev', '/dev/shm', '/tmp', '.', '/var/tmp', folder]:\n"
             "    try:\n        open(os.path.join(place, 'probe'), 'w').close()\n"
             "        writable.append(place)\n"
             "    except OSError:\n        pass\nprint(writable, shutil.disk_usage('/tmp').total)"
             ) % (str(ROOT / "source"), str(ROOT / "course_grading"))
    if mode == "user":
        monkeypatch.setenv(sandbox.USERNS, "1")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as folder, tempfile.TemporaryDirectory() as stash:
        sandbox.prepare_folder(folder, ROOT / "release" / "01_perceptron", sandbox.sandbox_uid())
        argv = sandbox.command(folder, [sys.executable, "-c", probe], uid=sandbox.sandbox_uid(),
                               env={"COURSE_JUDGE": f"{folder}/judge.sock"}, budget={"disk": 64 << 20})
        done = subprocess.run(as_user(argv, stash) if mode == "user" and os.geteuid() == 0 else argv,
                              capture_output=True, text=True, timeout=120)
    assert (done.stdout + done.stderr).split("\n")[:6] == [
        "['01_perceptron.ipynb']", "False", "False", "False", "grader hidden",
        f"['/dev/shm', '/tmp', '.'] {64 << 20}"], done.stdout + done.stderr


def test_grading_without_a_sandbox_is_refused_unless_asked(tmp_path, monkeypatch):
    unit = "01_perceptron"
    samples.write_class(tmp_path / "subs", {"s1": {unit: samples.student_notebook(ROOT, unit)}})
    monkeypatch.setattr(sandbox, "available", lambda: "no bubblewrap on this test machine")
    with pytest.raises(SandboxUnavailable, match="--unsandboxed"):
        grade_class(tmp_path / "subs", tmp_path / "out", jobs=1, progress=False, only=(unit,))
    report = grade_class(tmp_path / "subs", tmp_path / "out", jobs=1, progress=False, only=(unit,),
                         unsandboxed=True)
    assert report.scores["s1", unit][0] == report.scores["s1", unit][1] > 0
    assert "graded unsandboxed" in report.problems["s1", unit]
    assert "graded unsandboxed" in report.grades_csv.read_text()


def test_every_test_cell_is_judged_outside_the_kernel():
    from course_grading.pipeline.judge import hidden_checks_in
    from course_grading.tools.verify import unjudged_problems

    assert unjudged_problems() == []
    assert hidden_checks_in('assert f(1) == 2\nfrom course_utils.judge import hidden_check\n'
                            'hidden_check("unit01.check_perceptron_predict", perceptron_predict)') \
        == ["unit01.check_perceptron_predict"]
    assert hidden_checks_in("assert f(1) == 2  # only visible checks") == []
