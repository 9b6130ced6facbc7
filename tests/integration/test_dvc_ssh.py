"""A shared DVC remote over SSH: push, git clone, pull and a no-op repro against a real SSH/SFTP server.

The server is asyncssh's, listening on 127.0.0.1 in a background thread of the test process, serving the local
filesystem over SFTP (no chroot) to one client key. DVC talks to it through the pinned `dvc-ssh` plugin, from
subprocesses whose HOME is a fresh folder, so no ~/.ssh/config, key or agent of the machine takes part.

Host keys: dvc-ssh 4.3 has no known_hosts option, and sshfs (under it) connects with asyncssh's
`known_hosts=None`, which skips the server host key check; so the fresh HOME needs no known_hosts file.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from integration.conftest import run

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class SSHServer:
    host: str
    port: int
    user: str
    keyfile: Path  # the client private key the server accepts
    root: Path  # the remote folder (an absolute path on this machine, served as it is)

    def url(self) -> str:
        return f"ssh://{self.host}:{self.port}{self.root}"


def _write_key(key: asyncssh.SSHKey, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    key.write_private_key(str(path))
    key.write_public_key(f"{path}.pub")
    path.chmod(0o600)
    return path


@pytest.fixture
def ssh_server(tmp_path):
    """A real SSH server with SFTP on a free port of 127.0.0.1; yields its address, a client key and a remote folder."""
    keyfile = _write_key(asyncssh.generate_private_key("ssh-ed25519"), tmp_path / "keys" / "id_ed25519")
    authorized = tmp_path / "keys" / "authorized_keys"
    authorized.write_text(Path(f"{keyfile}.pub").read_text())
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    root = tmp_path / "ssh-remote" / "mtt-dvc"
    root.mkdir(parents=True)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="ssh-server", daemon=True)
    thread.start()

    async def start():
        # sftp_factory=True: asyncssh's plain SFTPServer, which serves absolute local paths (chroot only if asked)
        return await asyncssh.listen("127.0.0.1", 0, server_host_keys=[host_key],
                                     authorized_client_keys=str(authorized), sftp_factory=True)

    async def stop(server):
        server.close()
        await server.wait_closed()

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield SSHServer("127.0.0.1", server.get_port(), "mtt", keyfile, root)
    finally:
        asyncio.run_coroutine_threadsafe(stop(server), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


@pytest.fixture
def ssh_env(tool_env, tmp_path) -> dict[str, str]:
    """tool_env with a fresh HOME and no SSH agent: only the key the test configures is offered."""
    home = tmp_path / "home"
    home.mkdir()
    env = dict(tool_env, HOME=str(home))
    env.pop("SSH_AUTH_SOCK", None)
    env.pop("XDG_CONFIG_HOME", None)
    return env


def _add_remote(repo: Path, server: SSHServer, keyfile: Path, env: dict[str, str]) -> None:
    run(["dvc", "remote", "add", "-d", "team", server.url()], repo, env)
    # personal settings go to .dvc/config.local (git-ignored), as a team member would keep them
    run(["dvc", "remote", "modify", "--local", "team", "keyfile", str(keyfile)], repo, env)
    run(["dvc", "remote", "modify", "--local", "team", "user", server.user], repo, env)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_push_clone_pull_over_ssh_then_nothing_to_do(repo_copy, tool_env, ssh_env, ssh_server, tmp_path):
    first = run(["dvc", "repro", "simulate"], repo_copy, tool_env)
    assert "Running stage 'simulate'" in first.stdout
    produced = _files(repo_copy / "data" / "raw")
    assert sorted(produced) == [".mtt-output.json", "events_00000.root", "events_00001.root", "simulation.json"]

    _add_remote(repo_copy, ssh_server, ssh_server.keyfile, ssh_env)
    assert "keyfile" not in (repo_copy / ".dvc" / "config").read_text()  # the personal part stays out of git
    pushed = run(["dvc", "push", "simulate"], repo_copy, ssh_env)
    assert "pushed" in pushed.stdout
    stored = [p for p in ssh_server.root.rglob("*") if p.is_file()]
    assert len(stored) >= len(produced)  # the content-addressed cache now lives on the SSH server
    run(["git", "add", "-A"], repo_copy, tool_env)
    run(["git", "commit", "-qm", "simulate, shared over ssh"], repo_copy, tool_env)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo_copy), str(clone)], tmp_path, tool_env)
    assert "team" in (clone / ".dvc" / "config").read_text()  # the remote travelled with git ...
    assert not (clone / ".dvc" / "config.local").exists()  # ... the key did not
    assert not (clone / "data" / "raw").exists()
    run(["dvc", "remote", "modify", "--local", "team", "keyfile", str(ssh_server.keyfile)], clone, ssh_env)
    run(["dvc", "remote", "modify", "--local", "team", "user", ssh_server.user], clone, ssh_env)
    run(["dvc", "pull", "simulate"], clone, ssh_env)
    assert _files(clone / "data" / "raw") == produced  # byte-identical, without simulating again

    again = run(["dvc", "repro", "simulate"], clone, tool_env)
    assert "Running stage" not in again.stdout
    assert "didn't change" in again.stdout or "up to date" in again.stdout
    status = run(["dvc", "status", "simulate"], clone, tool_env)
    assert "up to date" in status.stdout


def test_push_with_a_key_the_server_refuses_fails(repo_copy, ssh_env, ssh_server, tmp_path):
    (repo_copy / "data" / "note.txt").write_text("small tracked file\n")
    run(["dvc", "add", "data/note.txt"], repo_copy, ssh_env)
    stranger = _write_key(asyncssh.generate_private_key("ssh-ed25519"), tmp_path / "stranger" / "id_ed25519")
    _add_remote(repo_copy, ssh_server, stranger, ssh_env)

    refused = subprocess.run(["dvc", "push"], cwd=repo_copy, env=ssh_env, capture_output=True, text=True, timeout=240)
    assert refused.returncode != 0
    # what DVC 3.67 prints: the user and the host the server refused (not the remote's name)
    assert f"Permission denied for user {ssh_server.user} on host {ssh_server.host}" in refused.stderr
    assert not [p for p in ssh_server.root.rglob("*") if p.is_file()]  # nothing reached the remote
