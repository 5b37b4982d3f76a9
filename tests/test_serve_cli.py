"""``sightline users ...`` and ``sightline serve`` argument handling through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sightline.cli import app
from sightline.serve import UserStore
from sightline.store import Workspace

from .serve_support import TestClient

runner = CliRunner()


def test_users_lifecycle(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    r = runner.invoke(
        app,
        ["users", "add", "alice", "--role", "analyst", "--clearance", "TLP:RED", "--password-stdin", "-w", ws],
        input="correct horse battery\n",
    )
    assert r.exit_code == 0, r.output
    assert "role analyst, clearance TLP:RED" in r.output
    store = UserStore(Workspace(ws))
    assert store.verify_password("alice", "correct horse battery") is not None
    assert store.verify_password("alice", "wrong") is None

    r = runner.invoke(app, ["users", "token", "alice", "--label", "ci", "-w", ws])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("sl_") and token not in (Path(ws) / "users.json").read_text()
    assert store.verify_token(token).name == "alice"

    from sightline.serve import create_app

    client = TestClient(create_app(Workspace(ws), secret=b"s" * 32))
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["clearance"] == "red"

    r = runner.invoke(app, ["users", "list", "-w", ws])
    assert r.exit_code == 0 and "alice\tanalyst\tTLP:RED\ttokens:" in r.stdout and "(ci)" in r.stdout
    assert token not in r.stdout

    r = runner.invoke(app, ["users", "remove", "alice", "-w", ws])
    assert r.exit_code == 0
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert json.loads((Path(ws) / "users.json").read_text())["users"] == {}


def test_users_bad_input_exits_2_with_a_hint(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    cases = [
        (["users", "add", "bob", "--role", "root", "--password-stdin"], "unknown role", "viewer, analyst, admin"),
        (["users", "add", "bob", "--clearance", "purple", "--password-stdin"], "unknown TLP clearance", "amber+strict"),
        (["users", "add", "bad name!", "--password-stdin"], "invalid user name", "letters"),
        (["users", "add", "bob", "--password-stdin"], "password too short", "at least 12"),
        (["users", "remove", "nobody"], "no user 'nobody'", "users list"),
        (["users", "token", "nobody"], "no user 'nobody'", "users add"),
    ]
    for args, message, hint in cases:
        r = runner.invoke(app, [*args, "-w", ws], input="short\n")
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output and hint in r.output, (args, r.output)


def test_serve_refuses_missing_workspace(tmp_path: Path) -> None:
    r = runner.invoke(app, ["serve", "-w", str(tmp_path / "missing"), "--port", "1"])
    assert r.exit_code == 2 and "does not exist" in r.output
