"""`sightline intel pull` against a real TAXII 2.1 server (medallion, memory backend, 127.0.0.1)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sightline.cli import app
from sightline.intel import read_indicators
from sightline.store import Workspace

pytest.importorskip("medallion")

COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
USER, PASSWORD = "analyst", "Password0"
T0 = "2024-03-01T00:00:00.000Z"


def indicator(n: int, ip: str, *, modified: str = T0, revoked: bool = False) -> dict:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
        "created": T0,
        "modified": modified,
        "name": f"C2 {ip}",
        "indicator_types": ["malicious-activity"],
        "pattern": f"[ipv4-addr:value = '{ip}']",
        "pattern_type": "stix",
        "valid_from": T0,
        "confidence": 80,
        "revoked": revoked,
    }


def manifest_entry(obj: dict, added: str) -> dict:
    return {
        "id": obj["id"],
        "date_added": added,
        "version": obj["modified"],
        "media_type": "application/stix+json;version=2.1",
    }


class Taxii:
    """A medallion process; ``add`` posts new objects through the server's own API."""

    def __init__(self, port: int, proc: subprocess.Popen) -> None:
        self.port, self.proc = port, proc
        self.root = f"http://127.0.0.1:{port}/api1/"

    def add(self, objects: list[dict]) -> None:
        r = httpx.post(
            f"{self.root}collections/{COLLECTION}/objects/",
            auth=(USER, PASSWORD),
            headers={
                "Content-Type": "application/taxii+json;version=2.1",
                "Accept": "application/taxii+json;version=2.1",
            },
            json={"objects": objects},
            timeout=10,
        )
        assert r.status_code == 202, r.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def taxii(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Taxii]:
    port = _free_port()
    objs = [indicator(1, "45.77.1.10"), indicator(2, "45.77.1.11")]
    many = getattr(request, "param", 0)  # more objects than one page holds
    objs += [indicator(100 + k, f"45.78.{k // 250}.{k % 250 + 1}") for k in range(many)]
    data = {
        "/discovery": {
            "title": "test",
            "default": f"http://127.0.0.1:{port}/api1/",
            "api_roots": [f"http://127.0.0.1:{port}/api1/"],
        },
        "api1": {
            "information": {
                "title": "api1",
                "versions": ["application/taxii+json;version=2.1"],
                "max_content_length": 10_000_000,
            },
            "status": [],
            "collections": [
                {
                    "id": COLLECTION,
                    "title": "RedJuliett",
                    "can_read": True,
                    "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": objs,
                    "manifest": [
                        manifest_entry(o, f"2024-03-01T00:{k // 60:02d}:{k % 60:02d}.000000Z")
                        for k, o in enumerate(objs)
                    ],
                }
            ],
        },
    }
    (tmp_path / "data.json").write_text(json.dumps(data))
    config = {
        "backend": {
            "module": "medallion.backends.memory_backend",
            "module_class": "MemoryBackend",
            "filename": str(tmp_path / "data.json"),
        },
        "users": {USER: PASSWORD},
        "taxii": {"max_page_size": 100},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    exe = shutil.which("medallion") or str(Path(sys.executable).parent / "medallion")
    log = tmp_path / "medallion.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [exe, "--host", "127.0.0.1", "--port", str(port), str(tmp_path / "config.json")],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:  # readiness: the server answers HTTP at all
            try:
                httpx.get(f"http://127.0.0.1:{port}/taxii2/", timeout=1)
                break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"medallion did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield Taxii(port, proc)
    finally:
        proc.terminate()
        proc.wait(10)


def pull(ws: Path, t: Taxii, *, password: str = PASSWORD, extra: list[str] = ()) -> object:
    return CliRunner().invoke(
        app,
        [
            "intel",
            "pull",
            "--taxii",
            t.root,
            "--collection",
            COLLECTION,
            "--user",
            USER,
            "--workspace",
            str(ws),
            *extra,
        ],
        env={"SIGHTLINE_TAXII_PASSWORD": password},
        catch_exceptions=False,
    )


def active(ws: Path) -> set[str]:
    t = read_indicators(Workspace(ws))
    return {r["value"] for r in t.to_pylist() if not r["revoked"]}


def test_pull_loads_indicators(tmp_path: Path, taxii: Taxii) -> None:
    res = pull(tmp_path / "ws", taxii)
    assert res.exit_code == 0, res.output
    assert active(tmp_path / "ws") == {"45.77.1.10", "45.77.1.11"}
    assert "pulled 2 objects" in res.output


def test_second_pull_takes_only_new_objects(tmp_path: Path, taxii: Taxii) -> None:
    ws = tmp_path / "ws"
    assert pull(ws, taxii).exit_code == 0
    taxii.add([indicator(3, "45.77.1.12")])
    res = pull(ws, taxii)
    assert res.exit_code == 0, res.output
    assert "pulled 1 objects" in res.output
    assert active(ws) == {"45.77.1.10", "45.77.1.11", "45.77.1.12"}
    res = pull(ws, taxii)  # nothing new
    assert res.exit_code == 0 and "pulled 0 objects" in res.output
    assert active(ws) == {"45.77.1.10", "45.77.1.11", "45.77.1.12"}


def test_revoked_object_removes_the_indicator(tmp_path: Path, taxii: Taxii) -> None:
    ws = tmp_path / "ws"
    assert pull(ws, taxii).exit_code == 0
    taxii.add([indicator(2, "45.77.1.11", modified="2024-04-01T00:00:00.000Z", revoked=True)])
    res = pull(ws, taxii)
    assert res.exit_code == 0, res.output
    assert active(ws) == {"45.77.1.10"}


def test_wrong_password_is_a_clear_error(tmp_path: Path, taxii: Taxii) -> None:
    res = pull(tmp_path / "ws", taxii, password="wrong")
    assert res.exit_code == 2
    assert "401" in res.output or "credentials" in res.output.lower()
    assert "Traceback" not in res.output
    assert active(tmp_path / "ws") == set()


@pytest.mark.parametrize("taxii", [250], indirect=True)
def test_paged_pull_then_incremental(tmp_path: Path, taxii: Taxii) -> None:
    ws = tmp_path / "ws"
    res = pull(ws, taxii)
    assert res.exit_code == 0, res.output
    assert "pulled 252 objects in 3 page(s)" in res.output
    assert len(active(ws)) == 252
    taxii.add([indicator(3, "45.77.1.12")])
    res = pull(ws, taxii)
    assert res.exit_code == 0, res.output
    assert "pulled 1 objects" in res.output
    assert "45.77.1.12" in active(ws)
