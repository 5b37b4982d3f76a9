"""``sightline serve`` (dashboard + JSON API) and ``sightline users ...``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import SightlineError
from .common import DEFAULT_WS, WorkspaceOpt, console, fail, out, setup_logging, workspace

__all__ = ["register"]

users_app = typer.Typer(help="Manage dashboard users, roles, TLP clearance and API tokens.", no_args_is_help=True)


def _store(ws_path: object):  # type: ignore[no-untyped-def]
    from ..serve.users import UserStore

    return UserStore(workspace(ws_path))  # type: ignore[arg-type]


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Option("--role", help="viewer, analyst or admin.")] = "viewer",
    clearance: Annotated[str, typer.Option("--clearance", help="Most restrictive TLP the user may see: clear, green, amber, amber+strict, red.")] = "amber",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")] = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Add a user, or reset an existing user's password, role and clearance."""
    try:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        user = _store(ws_path).add(name, password, role=role, clearance=clearance)
    except SightlineError as e:
        fail(e)
        return
    out.print(f"user {user.name}: role {user.role}, clearance TLP:{user.clearance.upper()}", highlight=False, markup=False)


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="User name.")], ws_path: WorkspaceOpt = DEFAULT_WS) -> None:
    """Remove a user; their sessions and API tokens stop working at once."""
    try:
        _store(ws_path).remove(name)
    except SightlineError as e:
        fail(e)
    out.print(f"removed user {name}", highlight=False, markup=False)


@users_app.command("list")
def users_list(ws_path: WorkspaceOpt = DEFAULT_WS) -> None:
    """List users with role, clearance and token ids (never the tokens)."""
    try:
        users = _store(ws_path).list()
    except SightlineError as e:
        fail(e)
        return
    if not users:
        console.print("no users yet: add one with `sightline users add NAME --role admin`", markup=False)
    for u in users:
        toks = ", ".join(f"{t['id']}({t['label']})" if t.get("label") else t["id"] for t in u.tokens) or "-"
        # Plain tab-separated lines (rich would expand the tabs), so the list can be piped.
        typer.echo(f"{u.name}\t{u.role}\tTLP:{u.clearance.upper()}\ttokens: {toks}")


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="User name.")],
    label: Annotated[str, typer.Option("--label", help="What the token is for.")] = "",
    revoke: Annotated[str, typer.Option("--revoke", help="Revoke the token with this id instead.")] = "",
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Create an API token for a user (printed once; only its hash is kept), or revoke one."""
    try:
        store = _store(ws_path)
        if revoke:
            store.revoke_token(name, revoke)
            out.print(f"revoked token {revoke} of {name}", highlight=False, markup=False)
            return
        token = store.new_token(name, label)
    except SightlineError as e:
        fail(e)
        return
    console.print("API token (shown once; send as 'Authorization: Bearer <token>'):", markup=False)
    typer.echo(token)


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8080,
    secure_cookies: Annotated[bool, typer.Option("--secure-cookies/--no-secure-cookies", help="Mark cookies Secure and send HSTS (behind HTTPS).", envvar="SIGHTLINE_SECURE_COOKIES")] = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Serve the web dashboard and JSON API (OpenAPI at /api/v1/openapi.json)."""
    setup_logging()
    try:
        import uvicorn

        from ..serve import create_app
        from ..serve.users import UserStore

        ws = workspace(ws_path)
        if not ws.root.is_dir():
            raise SightlineError(f"workspace {ws.root} does not exist", path=ws.root, hint="run `sightline hunt` first or pass --workspace DIR")
        if len(UserStore(ws)) == 0:
            console.print("warning: no users yet; nobody can log in. Add one: sightline users add NAME --role admin", markup=False)
        if host not in ("127.0.0.1", "::1", "localhost") and not secure_cookies:
            console.print("warning: listening beyond loopback without --secure-cookies; put it behind HTTPS", markup=False)
        app = create_app(ws, secure_cookies=secure_cookies)
    except SightlineError as e:
        fail(e)
        return
    console.print(f"sightline dashboard on http://{host}:{port}/ (workspace {ws.root})", markup=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False, proxy_headers=False)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``users`` to the ``sightline`` command."""
    app.command("serve")(serve)
    app.add_typer(users_app, name="users")
