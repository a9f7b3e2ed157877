#!/usr/bin/env python3
"""Set up a local .venv once (idempotently) and run a course task in it. Standard library only.

    python3 dev.py demo      the instructor pipeline on a generated sample class
    python3 dev.py test      the whole test suite (course_utils, notebooks via nbval, grading proofs)
    python3 dev.py bench     the benchmark figures
    python3 dev.py course …  any `course` command, e.g. `python3 dev.py course grade subs/ --jobs 2`

TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) picks where torch comes from.
"""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH = "torch==2.13.0"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_venv():
    """Create .venv and install the course into it, unless pyproject.toml is unchanged since last time."""
    if sys.version_info < (3, 10):
        sys.exit("Python 3.10 or newer is needed.")
    stamp = VENV / ".installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + TORCH.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "-q"]
    index = os.environ.get("TORCH_INDEX_URL")
    print(f"installing {TORCH} and the course (first run only)", flush=True)
    subprocess.run([*pip, TORCH, *(["--index-url", index] if index else [])], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    stamp.write_text(wanted)


def main(argv):
    task, rest = (argv[0], argv[1:]) if argv else ("help", [])
    commands = {
        "demo": [str(BIN / "course"), "demo", *rest],
        "test": [str(BIN / "python"), "-m", "pytest", *rest],
        "bench": [str(BIN / "course"), "bench", *rest],
        "course": [str(BIN / "course"), *rest],
    }
    if task not in commands:
        print(__doc__)
        return 0 if task == "help" else 2
    ensure_venv()
    if not shutil.which("dot"):
        print("note: Graphviz's `dot` is missing (graph drawings are skipped); "
              "install it with `sudo apt-get install graphviz`", flush=True)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(commands[task], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
