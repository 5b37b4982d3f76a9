"""``sightline simulate`` and ``sightline evaluate``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import typer

from ..errors import InputError, SightlineError
from .common import console, fail, print_json, print_table


def _knob(name: str) -> Any:
    """A typer option for a :class:`~sightline.simulate.Knobs` field: default and help come from it."""
    from ..simulate import Knobs

    f = next(x for x in dataclasses.fields(Knobs) if x.name == name)
    return typer.Option(
        f.default, f"--{name.replace('_', '-')}", help=f.metadata.get("help", ""), rich_help_panel="Scenario knobs"
    )


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"{what} not found", path=path, hint="check the path") from e
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{what} is not valid JSON: {e}", path=path) from e


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and ``evaluate`` to the CLI."""

    @app.command("evaluate")
    def evaluate_cmd(
        truth: Path = typer.Option(..., "--truth", help="truth.json written by `sightline simulate`."),
        findings: Path = typer.Option(..., "--findings", help="findings.json written by `sightline hunt`."),
        json_out: Path = typer.Option(
            None, "--json", help="Print the scores as JSON instead of the table; --json FILE also writes them to FILE."
        ),
    ) -> None:
        """Precision, recall and F1 per verdict and overall, plus a confusion matrix."""
        from ..evaluate import evaluate, render_table
        from ..store import atomic_write_json

        try:
            result = evaluate(_load_json(truth, "truth"), _load_json(findings, "findings"))
        except SightlineError as e:
            fail(e)
            return
        if json_out is not None and str(json_out) == "-":
            print_json(result)
            return
        print_table(render_table(result))
        if json_out:
            atomic_write_json(json_out, result)

    @app.command("simulate")
    def simulate_cmd(
        out_dir: Path = typer.Option(..., "--out", help="Output directory (its telemetry/ is replaced)."),
        seed: int = typer.Option(7, "--seed", help="Random seed; same seed, same output."),
        flows: int = typer.Option(
            200_000, "--flows", help="Flows in the scenario before sampling (campaign + background)."
        ),
        days: int = typer.Option(7, "--days", help="Length of the observation window in days."),
        formats: str = typer.Option(
            "zeek_tsv",
            "--formats",
            help="Comma-separated output formats (zeek_tsv, zeek_json, ...); sensors take them in turn.",
        ),
        victims: int = _knob("victims"),
        bystanders: int = _knob("bystanders"),
        compromised_share: float = _knob("compromised_share"),
        actor_ips: int = _knob("actor_ips"),
        sensors: int = _knob("sensors"),
        nat_share: float = _knob("nat_share"),
        v6_share: float = _knob("v6_share"),
        v6_flow_share: float = _knob("v6_flow_share"),
        scanner_share: float = _knob("scanner_share"),
        long_share: float = _knob("long_share"),
        missing_reverse_rate: float = _knob("missing_reverse_rate"),
        sampling: int = _knob("sampling"),
        sampled_sensor_share: float = _knob("sampled_sensor_share"),
        max_skew_s: float = _knob("max_skew_s"),
        corrupt_rate: float = _knob("corrupt_rate"),
        start: str = _knob("start"),
        chunk_flows: int = _knob("chunk_flows"),
    ) -> None:
        """Write a simulated RedJuliett-like campaign: Zeek telemetry, intel (STIX 2.1 + CSV), orgs.csv, truth.json.

        Modelled on public reporting about RedJuliett / Flax Typhoon: victims mostly in Taiwan, actor
        servers on VPS providers and SOHO routers, reconnaissance, exploitation of edge appliances and
        SoftEther-like tunnels, among benign traffic with scanners, NAT, shared CDN addresses, benign
        VPNs, clock skew, sampling and corrupt records (see the scenario knobs).
        """
        from ..simulate import simulate

        knobs = dict(
            victims=victims,
            bystanders=bystanders,
            compromised_share=compromised_share,
            actor_ips=actor_ips,
            sensors=sensors,
            nat_share=nat_share,
            v6_share=v6_share,
            v6_flow_share=v6_flow_share,
            scanner_share=scanner_share,
            long_share=long_share,
            missing_reverse_rate=missing_reverse_rate,
            sampling=sampling,
            sampled_sensor_share=sampled_sensor_share,
            max_skew_s=max_skew_s,
            corrupt_rate=corrupt_rate,
            start=start,
            chunk_flows=chunk_flows,
        )
        fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
        try:
            res = simulate(out_dir, seed=seed, flows=flows, days=days, formats=fmts, **knobs)
        except SightlineError as e:
            fail(e)
            return
        console.print(
            f"wrote {res.flows:,} flows in {len(res.telemetry)} files, intel, orgs.csv and truth.json to "
            f"{res.out_dir} in {res.seconds:.1f}s; victims: " + ", ".join(f"{k} {v}" for k, v in res.verdicts.items()),
            highlight=False,
        )


__all__ = ["register"]
