"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, unix socket only.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` OS user that
Debian's package creates; as anyone else it runs as the current user.
"""
import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path


def initdb():
    """The newest installed initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return found[-1] if found else shutil.which("initdb")


def unavailable():
    """Why no test server can be started here, or None."""
    if initdb() is None:
        return "PostgreSQL's initdb is not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0 and not _has_user("postgres"):
        return "running as root, and there is no `postgres` OS user for the server to run as"
    return None


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _as_server_user(command):
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]


@contextlib.contextmanager
def postgres_server():
    """Yield a function database(name) -> SQLAlchemy URL of a new, empty database on a fresh server."""
    binaries = Path(initdb()).parent
    folder = Path(tempfile.mkdtemp(prefix="pg"))  # short: a socket path must stay under 108 bytes
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
    data = folder / "data"
    run = lambda *args: subprocess.run(_as_server_user([str(binaries / args[0]), *args[1:]]), check=True,
                                       capture_output=True, text=True, timeout=120)
    try:
        run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        options = f"-c listen_addresses='' -c unix_socket_directories={folder} -c fsync=off"
        run("pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")

        def database(name):
            run("createdb", "-h", str(folder), "-U", "postgres", name)
            return f"postgresql+psycopg2://postgres@/{name}?host={folder}"

        yield database
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
