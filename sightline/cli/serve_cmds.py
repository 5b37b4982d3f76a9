"""``sightline serve`` (dashboard + JSON API) and ``sightline users ...``; registers
``sightline case ...`` and ``sightline audit`` (:mod:`.case_cmds`)."""

from __future__ import annotations

import json
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
    clearance: Annotated[
        str,
        typer.Option(
            "--clearance", help="Most restrictive TLP the user may see: clear, green, amber, amber+strict, red."
        ),
    ] = "amber",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
    ] = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Add a user, or reset an existing user's password, role and clearance (12+ characters,
    not a common password; their sessions end)."""
    try:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        user = _store(ws_path).add(name, password, role=role, clearance=clearance)
    except SightlineError as e:
        fail(e)
        return
    out.print(
        f"user {user.name}: role {user.role}, clearance TLP:{user.clearance.upper()}", highlight=False, markup=False
    )
    _audit(ws_path, "user.add", user=user.name, role=user.role, clearance=user.clearance)


def _audit(ws_path: object, what: str, **details: object) -> None:
    from ..cases import audit

    audit.record(workspace(ws_path), what, who=audit.cli_user(), where="cli", **details)  # type: ignore[arg-type]


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="User name.")], ws_path: WorkspaceOpt = DEFAULT_WS) -> None:
    """Remove a user; their sessions and API tokens stop working at once."""
    try:
        _store(ws_path).remove(name)
    except SightlineError as e:
        fail(e)
    _audit(ws_path, "user.remove", user=name)
    out.print(f"removed user {name}", highlight=False, markup=False)


@users_app.command("list")
def users_list(
    ws_path: WorkspaceOpt = DEFAULT_WS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List users with role, clearance and token ids (never the tokens)."""
    try:
        users = _store(ws_path).list()
    except SightlineError as e:
        fail(e)
        return
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": u.name,
                        "role": u.role,
                        "clearance": u.clearance,
                        "tokens": [
                            {k: v for k, v in t.items() if k in ("id", "label", "created_at")} for t in u.tokens
                        ],
                        "totp": bool(u.totp),
                    }
                    for u in users
                ],
                indent=2,
            )
        )
        return
    if not users:
        console.print("no users yet: add one with `sightline users add NAME --role admin`", markup=False)
    for u in users:
        toks = ", ".join(f"{t['id']}({t['label']})" if t.get("label") else t["id"] for t in u.tokens) or "-"
        # Plain tab-separated lines (rich would expand the tabs), so the list can be piped.
        typer.echo(f"{u.name}\t{u.role}\tTLP:{u.clearance.upper()}\ttokens: {toks}" + ("\ttotp" if u.totp else ""))


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
            _audit(ws_path, "token.revoke", user=name, token=revoke)
            out.print(f"revoked token {revoke} of {name}", highlight=False, markup=False)
            return
        token = store.new_token(name, label)
    except SightlineError as e:
        fail(e)
        return
    _audit(ws_path, "token.create", user=name, token=token[3:11], label=label or None)
    console.print("API token (shown once; send as 'Authorization: Bearer <token>'):", markup=False)
    typer.echo(token)


@users_app.command("sessions")
def users_sessions(
    name: Annotated[str, typer.Argument(help="Only this user's sessions.")] = "",
    revoke: Annotated[str, typer.Option("--revoke", help="End the session with this id now.")] = "",
    revoke_all: Annotated[bool, typer.Option("--revoke-all", help="End every session of NAME now.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """List dashboard login sessions (id, user, since, last seen, from where), or end them."""
    from ..serve.sessions import SessionStore

    store = SessionStore(workspace(ws_path))
    try:
        if revoke:
            gone = store.revoke(revoke, user=name or None)
            _audit(ws_path, "session.revoke", session=revoke, of=gone.get("user"))
            out.print(f"ended session {revoke} of {gone.get('user')}", highlight=False, markup=False)
            return
        if revoke_all:
            if not name:
                raise SightlineError(
                    "--revoke-all needs a user name", hint="sightline users sessions NAME --revoke-all"
                )
            n = store.revoke_user(name)
            _audit(ws_path, "session.revoke", of=name, sessions=n)
            out.print(f"ended {n} session(s) of {name}", highlight=False, markup=False)
            return
        rows = store.list(name or None)
    except SightlineError as e:
        fail(e)
        return
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no live sessions", markup=False)
    for r in rows:
        typer.echo(
            f"{r['id']}\t{r['user']}\tsince {r['created_at']}\tlast seen {r['last_seen']}\tfrom {r['client']}\t{r['agent'] or ''}"
        )


@users_app.command("totp")
def users_totp(
    name: Annotated[str, typer.Argument(help="User name.")],
    disable: Annotated[bool, typer.Option("--disable", help="Remove the second factor instead.")] = False,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Turn on a TOTP second factor for a user (meant for admins): prints the secret and an
    otpauth:// URI for an authenticator app, once.  The user's sessions end."""
    try:
        store = _store(ws_path)
        if disable:
            store.disable_totp(name)
            _audit(ws_path, "user.totp", user=name, enabled=False)
            out.print(f"second factor of {name} removed", highlight=False, markup=False)
            return
        secret, uri = store.enable_totp(name)
    except SightlineError as e:
        fail(e)
        return
    _audit(ws_path, "user.totp", user=name, enabled=True)
    console.print(
        "TOTP secret (shown once; add it to an authenticator app, or open the URI as a QR code):", markup=False
    )
    typer.echo(secret)
    typer.echo(uri)


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8080,
    secure_cookies: Annotated[
        bool,
        typer.Option(
            "--secure-cookies/--no-secure-cookies",
            help="Mark cookies Secure and send HSTS (behind HTTPS).",
            envvar="SIGHTLINE_SECURE_COOKIES",
        ),
    ] = False,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="Address or CIDR of a reverse proxy whose X-Forwarded-For names the client (repeat for several).",
            envvar="SIGHTLINE_TRUSTED_PROXIES",
        ),
    ] = None,
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            min=1.0,
            max=300.0,
            help="Seconds a client has to send a whole request (against slow-sending clients).",
        ),
    ] = 10.0,
    api_rate: Annotated[
        float,
        typer.Option(
            "--api-rate", min=0.0, help="Requests per second each API token or user may make on average (0: no limit)."
        ),
    ] = 20.0,
    api_burst: Annotated[
        float, typer.Option("--api-burst", min=1.0, help="Requests each API token or user may make at once.")
    ] = 60.0,
    login_hashing: Annotated[
        int,
        typer.Option("--login-hashing", min=1, max=64, help="Passwords checked at once (argon2 takes 64 MiB each)."),
    ] = 2,
    ws_path: WorkspaceOpt = DEFAULT_WS,
) -> None:
    """Serve the web dashboard and JSON API (OpenAPI at /api/v1/openapi.json)."""
    setup_logging()
    try:
        import uvicorn

        from ..serve import create_app
        from ..serve.security import parse_proxies
        from ..serve.server import server_config
        from ..serve.users import UserStore

        ws = workspace(ws_path)
        if not ws.root.is_dir():
            raise SightlineError(
                f"workspace {ws.root} does not exist",
                path=ws.root,
                hint="run `sightline hunt` first or pass --workspace DIR",
            )
        if len(UserStore(ws)) == 0:
            console.print(
                "warning: no users yet; nobody can log in. Add one: sightline users add NAME --role admin", markup=False
            )
        if host not in ("127.0.0.1", "::1", "localhost") and not secure_cookies:
            console.print(
                "warning: listening beyond loopback without --secure-cookies; put it behind HTTPS", markup=False
            )
        proxies = parse_proxies(trusted_proxy or [])
        app = create_app(
            ws,
            secure_cookies=secure_cookies,
            trusted_proxies=proxies,
            api_rate=api_rate,
            api_burst=api_burst,
            hash_concurrency=login_hashing,
        )
    except SightlineError as e:
        fail(e)
        return
    console.print(f"sightline dashboard on http://{host}:{port}/ (workspace {ws.root})", markup=False)
    uvicorn.Server(server_config(app, host=host, port=port, header_timeout=header_timeout)).run()


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``users`` to the ``sightline`` command."""
    from . import case_cmds

    app.command("serve")(serve)
    app.add_typer(users_app, name="users")
    case_cmds.register(app)
