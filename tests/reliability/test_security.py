"""The team server's security (`make server`, scripts/server.sh): MLflow's basic-auth app is on, so a request
without the admin's (or a teammate's) credentials deletes nothing; the secrets the first start generates live in
files only their owner reads; no secret ever appears on a command line (`ps` shows those to every user).

One real server (PostgreSQL and `mlflow server`) started from nothing on free ports; every process's command line
is sampled from /proc the whole time the first start runs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "server.sh"
BIN = Path(sys.executable).parent
#: the files under the server's folder that hold a secret: PostgreSQL's role, MLflow's admin, Flask's CSRF key
SECRET_FILES = ("pg-password", "admin-password", "flask-secret-key")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CommandLines(threading.Thread):
    """Every distinct command line of every process, read from /proc as fast as it goes until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: set[bytes] = set()
        self.sweeps = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as file:
                            self.seen.add(file.read())
                    except OSError:
                        pass  # the process ended meanwhile
            self.sweeps += 1

    def stop(self) -> None:
        self._done.set()
        self.join()


def _start(env: dict[str, str], log: Path) -> subprocess.Popen:
    """scripts/server.sh start in the background, once it serves (it prints the URI to export then)."""
    url = f"http://127.0.0.1:{env['MTT_SERVER_PORT']}"
    with open(log, "w") as out:
        process = subprocess.Popen(["bash", str(SCRIPT), "start"], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while f"export MLFLOW_TRACKING_URI={url}\n" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(env, process)
            pytest.fail(f"scripts/server.sh start did not serve {url}:\n{log.read_text()}")
        time.sleep(0.2)
    return process


def _stop(env: dict[str, str], process: subprocess.Popen) -> None:
    subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def first_start():
    """(url, env, folder of the server, command lines seen during its first start, its output) of a server
    started from nothing; stopped at the end. Its folder is under /tmp, open to user postgres (the cluster
    runs as postgres when the tests run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="mtt-security-"))
    folder.chmod(0o755)
    env = {**os.environ, "MTT_SERVER_DIR": str(folder / "server"), "MTT_PG_PORT": str(_free_port()),
           "MTT_SERVER_PORT": str(_free_port()), "MTT_MLFLOW": str(BIN / "mlflow"),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_RUN_ID",
                 "MTT_PG_PASSWORD", "MTT_SERVER_HOST"):
        env.pop(name, None)
    sampler = CommandLines()
    sampler.start()
    log = folder / "server.out"
    process = None
    try:
        process = _start(env, log)
        sampler.stop()
        yield f"http://127.0.0.1:{env['MTT_SERVER_PORT']}", env, Path(env["MTT_SERVER_DIR"]), sampler, log
    finally:
        sampler.stop()
        if process is not None:
            _stop(env, process)
        shutil.rmtree(folder, ignore_errors=True)


def _admin(server_dir: Path) -> tuple[str, str]:
    """The admin's user name and password, from the file the first start wrote."""
    return "admin", (server_dir / "admin-password").read_text().strip()


def _post(url: str, path: str, body: dict, user: tuple[str, str] | None = None) -> tuple[int, dict]:
    """(HTTP status, JSON answer) of a POST to MLflow's REST API, with basic auth when `user` is given."""
    return _call(urllib.request.Request(f"{url}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                        method="POST", headers={"Content-Type": "application/json"}), user)


def _get(url: str, path: str, user: tuple[str, str] | None = None) -> tuple[int, dict]:
    """(HTTP status, JSON answer) of a GET of MLflow's REST API."""
    return _call(urllib.request.Request(f"{url}/api/2.0/mlflow/{path}"), user)


def _call(request: urllib.request.Request, user: tuple[str, str] | None) -> tuple[int, dict]:
    """Send a request, logged in as `user` if given; (status, JSON answer), an HTTP error as its status."""
    if user:
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _experiment_with_a_run(url: str, admin: tuple[str, str], name: str) -> tuple[str, str]:
    """(experiment id, run id) created by the admin."""
    status, answer = _post(url, "experiments/create", {"name": name}, admin)
    assert status == 200, answer
    experiment = answer["experiment_id"]
    status, answer = _post(url, "runs/create", {"experiment_id": experiment}, admin)
    assert status == 200, answer
    return experiment, answer["run"]["info"]["run_id"]


def test_no_secret_is_ever_on_a_command_line_during_the_first_start(first_start):
    _, _, server_dir, sampler, _ = first_start
    assert sampler.sweeps > 20, "too few samples of /proc to tell"
    secrets = {name: (server_dir / name).read_text().strip() for name in SECRET_FILES
               if (server_dir / name).is_file()}
    # the start ran the programs that once carried the password: psql (as postgres) and mlflow server
    assert any(b"psql" in line for line in sampler.seen) and any(b"mlflow" in line for line in sampler.seen)
    leaks = {name: [line.replace(b"\0", b" ").decode(errors="replace") for line in sampler.seen
                    if secret.encode() in line] for name, secret in secrets.items()}
    assert leaks == {name: [] for name in secrets}
    assert set(secrets) == set(SECRET_FILES)
    assert all(len(secret) >= 16 for secret in secrets.values()), "a generated secret is too short"


def test_secret_files_are_readable_by_their_owner_only_and_the_start_says_how_to_log_in(first_start):
    _, _, server_dir, _, log = first_start
    for name in SECRET_FILES:
        mode = stat.S_IMODE((server_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name}: {oct(mode)}"
    out = log.read_text()
    assert f"admin password in {server_dir / 'admin-password'}" in out, out
    assert "MLFLOW_TRACKING_USERNAME=admin" in out and "MLFLOW_TRACKING_PASSWORD" in out, out
    assert _admin(server_dir)[1] not in out  # the script names the file, never prints the password


def test_an_unauthenticated_request_deletes_no_run_and_no_experiment(first_start):
    url, _, server_dir, _, _ = first_start
    admin = _admin(server_dir)
    experiment, run = _experiment_with_a_run(url, admin, "kept")
    for who in (None, ("admin", "not-the-password"), ("nobody", admin[1])):
        assert _post(url, "runs/delete", {"run_id": run}, who)[0] == 401, who
        assert _post(url, "experiments/delete", {"experiment_id": experiment}, who)[0] == 401, who
        assert _get(url, f"experiments/get?experiment_id={experiment}", who)[0] == 401, who
    status, answer = _get(url, f"runs/get?run_id={run}", admin)
    assert status == 200 and answer["run"]["info"]["lifecycle_stage"] == "active"
    status, answer = _get(url, f"experiments/get?experiment_id={experiment}", admin)
    assert status == 200 and answer["experiment"]["lifecycle_stage"] == "active"
    # the admin's credentials delete both
    assert _post(url, "runs/delete", {"run_id": run}, admin)[0] == 200
    assert _post(url, "experiments/delete", {"experiment_id": experiment}, admin)[0] == 200
    assert _get(url, f"runs/get?run_id={run}", admin)[1]["run"]["info"]["lifecycle_stage"] == "deleted"
    assert _get(url, f"experiments/get?experiment_id={experiment}", admin)[1]["experiment"][
        "lifecycle_stage"] == "deleted"


def test_a_teammate_logs_into_a_shared_experiment_but_deletes_only_with_the_right(first_start):
    """The default permission of a user the admin creates: edit (log runs anywhere), but not delete what others
    created."""
    url, _, server_dir, _, _ = first_start
    admin = _admin(server_dir)
    teammate = ("alice", "a-teammate-password-1")
    status, answer = _post(url, "users/create", {"username": teammate[0], "password": teammate[1]}, admin)
    assert status == 200, answer
    experiment, run = _experiment_with_a_run(url, admin, "shared")
    status, answer = _post(url, "runs/create", {"experiment_id": experiment}, teammate)
    assert status == 200, answer
    assert _post(url, "runs/delete", {"run_id": run}, teammate)[0] == 403
    assert _post(url, "experiments/delete", {"experiment_id": experiment}, teammate)[0] == 403
    assert _get(url, f"runs/get?run_id={run}", admin)[1]["run"]["info"]["lifecycle_stage"] == "active"


def test_mtt_without_a_login_says_so_in_one_line_before_any_work(first_start, tmp_path):
    """mtt's own check of the server (before any stage works) names the missing or refused login."""
    url, env, server_dir, _, _ = first_start
    client = {**env, "MLFLOW_TRACKING_URI": url}
    for login, expected in (({}, "asks who you are (HTTP 401): set MLFLOW_TRACKING_USERNAME"),
                            ({"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "wrong"},
                             "refuses the login of user 'admin'")):
        done = subprocess.run([str(BIN / "mtt"), "runs", "--cleanup"], env={**client, **login}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and expected in done.stderr and len(done.stderr.strip().splitlines()) == 1, \
            done.stderr
    admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": _admin(server_dir)[1]}
    done = subprocess.run([str(BIN / "mtt"), "runs", "--cleanup"], env={**client, **admin}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_later_start_keeps_the_admin_password(first_start):
    """Last: it restarts the module's server."""
    url, env, server_dir, _, _ = first_start
    before = {name: (server_dir / name).read_text() for name in SECRET_FILES}
    subprocess.run(["bash", str(SCRIPT), "stop"], env=env, check=True, capture_output=True, timeout=120)
    process = _start(env, server_dir.parent / "again.out")
    try:
        assert {name: (server_dir / name).read_text() for name in SECRET_FILES} == before
        assert _get(url, "experiments/search?max_results=1", _admin(server_dir))[0] == 200
        assert _get(url, "experiments/search?max_results=1")[0] == 401
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=120)
        process.wait(timeout=60)


@pytest.mark.parametrize("option", [["--app-name", "x"], ["--app-name=basic-auth"]])
def test_the_auth_app_cannot_be_switched_off_through_server_args(option, tmp_path):
    """`make server SERVER_ARGS="--app-name ..."` would replace basic-auth: refused in one line before any work."""
    env = {**os.environ, "MTT_SERVER_DIR": str(tmp_path / "server"), "MTT_MLFLOW": str(tmp_path / "no-mlflow")}
    result = subprocess.run(["bash", str(SCRIPT), "start", *option], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("server: --app-name is this script's to set (basic-auth"), line
    assert result.stdout == "" and list(tmp_path.iterdir()) == []
