"""``marketfeed`` command line (typer + rich)."""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.table import Table

from .._config import Config, load_config, parse_config
from .._errors import MarketfeedError
from .._logging import configure_logging, secrets_of
from .._plugins import PluginManager

if TYPE_CHECKING:
    from .._supervisor import Supervisor

app = typer.Typer(
    help="marketfeed: collect market data in real time and on schedules, and persist it.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
console = Console()
err = Console(stderr=True)
log = logging.getLogger("marketfeed.cli")


def _fail(exc: BaseException) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(2)


@app.callback()
def _root() -> None:
    """marketfeed: collect market data in real time and on schedules, and persist it."""


@app.command()
def plugins() -> None:
    """List installed plugins with their venues, channels, capabilities and sinks."""
    try:
        pm = PluginManager()
    except MarketfeedError as exc:
        raise _fail(exc) from None
    table = Table(title="marketfeed plugins")
    for col in ("plugin", "distribution", "provides", "channels / schemes", "capabilities"):
        table.add_column(col)
    for row in pm.listing():
        for venue in row["venues"]:
            table.add_row(
                row["plugin"],
                row["distribution"],
                f"venue {venue.name}",
                ", ".join(venue.channels) or "-",
                ", ".join(venue.capabilities) or "-",
            )
        for sink in row["sinks"]:
            table.add_row(
                row["plugin"],
                row["distribution"],
                f"sink {sink.name}",
                ", ".join(sink.url_schemes) or "-",
                "persist",
            )
    for name, why in pm.broken.items():
        table.add_row(name, "[red]failed to load[/]", why, "-", "-")
    if not table.row_count:
        console.print("no plugins installed: pip install marketfeed-okx marketfeed-sinks ...")
        return
    console.print(table)


def _rich_progress() -> Any:
    from rich.progress import Progress

    progress = Progress(console=err, transient=False)
    progress.start()

    class _Bar:
        def __init__(self, description: str, total: int | None) -> None:
            self._task = progress.add_task(description, total=total)

        def advance(self, n: int = 1) -> None:
            progress.advance(self._task, n)

        def close(self) -> None:
            progress.update(self._task, completed=progress.tasks[self._task].total or 0)

    def factory(description: str, total: int | None) -> _Bar:
        return _Bar(description, total)

    return factory, progress


def _load(config: Path) -> Config:
    try:
        return load_config(config)
    except MarketfeedError as exc:
        raise _fail(exc) from None


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="TOML config file")],
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until signal)")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING")] = None,
    log_json: Annotated[bool, typer.Option(help="Log JSON Lines")] = False,
) -> None:
    """Collect what CONFIG describes until SIGINT/SIGTERM (or --duration), then drain and
    flush every sink."""
    cfg = _load(config)
    configure_logging(log_level or cfg.log_level, secrets=secrets_of(cfg), json_lines=log_json)
    from .._supervisor import Supervisor

    factory, progress = _rich_progress()

    async def main() -> Any:
        async with Supervisor(cfg, progress=factory) as sup:
            await sup.run(duration)
        return sup.status()

    try:
        status = anyio.run(main)
    except MarketfeedError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:  # pragma: no cover - signals are handled in Supervisor.run
        raise typer.Exit(130) from None
    finally:
        progress.stop()
    _print_status(status)


def _print_status(status: Any) -> None:
    conns = Table(title="connections")
    for col in (
        "connection",
        "state",
        "frames",
        "rate/s",
        "last frame",
        "malformed",
        "reconnects",
        "gaps",
        "last error",
    ):
        conns.add_column(col)
    now = _dt.datetime.now(_dt.UTC)
    for c in status.connections:
        age = f"{(now - c.last_frame).total_seconds():.1f}s ago" if c.last_frame else "-"
        conns.add_row(
            c.name,
            c.state,
            str(c.frames),
            f"{c.rate:.1f}",
            age,
            str(c.malformed),
            str(c.reconnects),
            str(c.gaps),
            c.last_error or "",
        )
    console.print(conns)
    subs = Table(title="subscriptions")
    for col in ("venue", "channel", "symbol", "state", "events", "rate/s", "last event", "error"):
        subs.add_column(col)
    for s in status.subscriptions:
        age = f"{(now - s.last_event).total_seconds():.1f}s ago" if s.last_event else "-"
        error = f"{s.code}: {s.message}" if s.code else ""
        subs.add_row(
            s.venue, s.channel, s.symbol, s.state, str(s.events), f"{s.rate:.1f}", age, error
        )
    console.print(subs)
    sinks = Table(title="sinks")
    for col in ("sink", "url", "queue", "batches", "rows", "retries", "dead letters", "error"):
        sinks.add_column(col)
    for k in status.sinks:
        sinks.add_row(
            k.name,
            k.url,
            f"{k.queue_depth}/{k.queue_size}",
            str(k.batches),
            str(k.rows),
            str(k.retries),
            str(k.dead_letters),
            k.last_error or "",
        )
    console.print(sinks)
    if status.errors:
        console.print("[bold]errors:[/]")
        for e in status.errors[-10:]:
            console.print(f"  {e}")


@app.command()
def status(
    config: Annotated[
        Path | None, typer.Argument(help="Config of the running `marketfeed run`")
    ] = None,
    file: Annotated[Path | None, typer.Option(help="Status file to read")] = None,
    watch: Annotated[float, typer.Option(help="Refresh every N seconds (0: once)")] = 0.0,
) -> None:
    """Show live per-connection, per-subscription and per-sink state of a running
    `marketfeed run` (read from its status file, rewritten every second)."""
    from .._status import Status

    path = file
    if path is None:
        cfg = _load(config) if config else parse_config("")
        if not cfg.supervisor.status_path:
            raise _fail(MarketfeedError("status_path is disabled in this config"))
        path = Path(cfg.supervisor.status_path)
    import msgspec

    while True:
        try:
            st = msgspec.json.decode(path.read_bytes(), type=Status)
        except FileNotFoundError:
            raise _fail(
                MarketfeedError(
                    f"no status file at {path}: is `marketfeed run` running in this directory?"
                )
            ) from None
        age = (_dt.datetime.now(_dt.UTC) - st.time).total_seconds()
        state = "running" if st.running and age < 10 else "stopped"
        console.print(
            f"status of {path} ({state}, written {age:.1f}s ago, dead letters: {st.dead_letters})"
        )
        _print_status(st)
        if not watch:
            return
        import time

        time.sleep(watch)
        console.clear()


@app.command()
def replay(
    captures: Annotated[
        list[str], typer.Argument(help="Capture files; WebSocket ones as PATH=FILE (default /)")
    ],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8765,
    speed: Annotated[
        float | None, typer.Option(help="Pace: 1.0 recorded, 10 ten times faster (default: max)")
    ] = None,
) -> None:
    """Serve captures on loopback as a fake venue (WebSocket and recorded REST)."""
    from ..testing import ReplayServer, read_capture, read_http_capture

    async def main() -> None:
        async with ReplayServer(port=port) as server:
            for spec in captures:
                path, _, file = spec.rpartition("=")
                if file.endswith(".http.jsonl") or ".http." in Path(file).name:
                    server.add_http(read_http_capture(file))
                    console.print(f"HTTP {file} on {server.http_url}")
                else:
                    route = path or "/"
                    server.add_ws(route, read_capture(file), speed=speed)
                    console.print(f"WebSocket {file} on {server.ws_url}{route}")
            console.print("serving; Ctrl-C to stop")
            await anyio.sleep_forever()

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        pass


def _parse_time(value: str) -> _dt.datetime:
    t = _dt.datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def _single_venue_config(config: Path | None, sink: str | None) -> Config:
    cfg = _load(config) if config else parse_config("")
    if sink:
        import msgspec

        from .._config import SinkConfig

        cfg = msgspec.structs.replace(cfg, sinks=[SinkConfig(type="sql", url=sink)])
    elif not cfg.sinks:
        import msgspec

        from .._config import SinkConfig

        cfg = msgspec.structs.replace(cfg, sinks=[SinkConfig()])
    import msgspec

    from .._config import SupervisorConfig

    return msgspec.structs.replace(
        cfg,
        subscriptions=[],
        schedules=[],
        supervisor=msgspec.structs.replace(cfg.supervisor or SupervisorConfig(), status_path=None),
    )


def _run_once(
    config: Path | None, sink: str | None, body: Callable[[Supervisor], Awaitable[int]]
) -> int:
    """Run ``body`` inside a supervisor (sinks open, no subscriptions or schedules) with
    logging and a rich progress bar; errors become a clean exit 2."""
    from .._supervisor import Supervisor

    cfg = _single_venue_config(config, sink)
    configure_logging(cfg.log_level, secrets=secrets_of(cfg))
    factory, progress = _rich_progress()

    async def main() -> int:
        async with Supervisor(cfg, progress=factory) as sup:
            return await body(sup)

    try:
        return anyio.run(main)
    except MarketfeedError as exc:
        raise _fail(exc) from None
    finally:
        progress.stop()


@app.command()
def backfill(
    venue: Annotated[str, typer.Argument(help="Venue, e.g. okx")],
    channel: Annotated[str, typer.Option(help="Channel, e.g. candle1m or trades")],
    symbol: Annotated[list[str], typer.Option(help="Native symbol (repeatable)")],
    start: Annotated[str, typer.Option(help="ISO time (UTC unless offset given)")],
    end: Annotated[str | None, typer.Option(help="ISO time (default: now)")] = None,
    config: Annotated[Path | None, typer.Option(help="Config for endpoints/options/sinks")] = None,
    sink: Annotated[str | None, typer.Option(help="SQL sink URL (overrides config)")] = None,
) -> None:
    """Fetch REST history (candles, trades) for a time range into the sinks, with a progress bar."""
    from .._contract import BackfillRequest, Subscription

    async def body(sup: Supervisor) -> int:
        info = sup.plugins.venue(venue)
        if info.backfill is None:
            raise MarketfeedError(f"venue {venue!r} has no backfill capability")
        request = BackfillRequest(
            subscriptions=tuple(
                Subscription(venue=venue, channel=channel, symbol=s) for s in symbol
            ),
            start=_parse_time(start),
            end=_parse_time(end) if end else _dt.datetime.now(_dt.UTC),
        )
        n = 0
        async for batch in info.backfill(request, sup.context(venue)):
            await sup.route(batch)
            n += len(batch)
        return n

    n = _run_once(config, sink, body)
    console.print(f"backfill done: {n} events")


@app.command()
def job(
    venue: Annotated[str, typer.Argument(help="Venue, e.g. naver_etf")],
    name: Annotated[str, typer.Argument(help="Job name, e.g. etf_holdings")],
    option: Annotated[
        list[str] | None, typer.Option(help="Job option KEY=VALUE (JSON values allowed)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Config for endpoints/options/sinks")] = None,
    sink: Annotated[str | None, typer.Option(help="SQL sink URL (overrides config)")] = None,
) -> None:
    """Run a venue's scheduled job once now (e.g. every ETF's constituents), with a
    progress bar, into the sinks."""
    from .._scheduler import run_job

    options: dict[str, Any] = {}
    for item in option or []:
        key, _, raw = item.partition("=")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw

    async def body(sup: Supervisor) -> int:
        jobs = {j.name: j for j in sup.plugins.venue(venue).jobs}
        if name not in jobs:
            raise MarketfeedError(
                f"venue {venue!r} has no job {name!r}; jobs: {', '.join(jobs) or 'none'}"
            )
        return await run_job(sup, sup.context(venue), jobs[name], options)

    n = _run_once(config, sink, body)
    console.print(f"job {venue}:{name} done: {n} events")


@app.command()
def demo(
    db: Annotated[Path, typer.Option(help="SQLite file to write")] = Path("marketfeed-demo.db"),
    sink: Annotated[
        str | None,
        typer.Option(help="SQL sink URL instead of --db, e.g. postgresql://user@host/db"),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(help="Replay pace: 1.0 recorded, 10 ten times faster (default: max)"),
    ] = None,
    venue: Annotated[
        list[str] | None, typer.Option(help="Only this venue (repeatable; default: all)")
    ] = None,
    schema: Annotated[
        str | None, typer.Option(help="PostgreSQL schema for the tables (with --sink)")
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "WARNING",
) -> None:
    """Offline demo: replay real recorded OKX and Upbit sessions (bundled with their
    plugins) on a loopback server, collect them through the real plugins and supervisor
    into SQLite (or --sink), and print a summary per venue and channel. Exit code 1 when
    something failed (a subscription, a book checksum, a dead letter) or nothing was
    stored."""
    from ._demo import run_demo

    if speed is not None and speed <= 0:
        raise _fail(MarketfeedError(f"--speed must be positive, not {speed}"))
    configure_logging(log_level)
    url = sink or f"sqlite:///{db}"
    options = {"schema": schema} if schema else {}

    async def main() -> Any:
        return await run_demo(url, speed, venue or [], sink_options=options)

    try:
        summary = anyio.run(main)
    except MarketfeedError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    out = console if console.is_terminal else Console(width=max(console.width, 132))
    out.print(summary.table())
    out.print(summary.footer())
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def record(
    config: Annotated[Path, typer.Argument(help="TOML config: what to subscribe")],
    out: Annotated[Path, typer.Option(help="Folder for the capture files")] = Path("captures"),
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until signal)")
    ] = None,
) -> None:
    """Record live traffic in the capture format (one JSON Lines file per connection, both
    directions, secrets redacted) while collecting as `run` does; replay it later with
    `marketfeed replay` or the testing kit."""

    from .._supervisor import Supervisor
    from .._transport import get_transport
    from ..testing import RecordingTransport

    cfg = _load(config)
    secrets = secrets_of(cfg)
    configure_logging(cfg.log_level, secrets=secrets)
    inner = get_transport(
        cfg.supervisor.transport, max_message_size=cfg.supervisor.max_message_size
    )
    transport = RecordingTransport(inner, out, secrets)

    async def main() -> None:
        async with Supervisor(cfg, transport=transport) as sup:
            await sup.run(duration)

    try:
        anyio.run(main)
    except MarketfeedError as exc:
        raise _fail(exc) from None
    for path in transport.files:
        console.print(f"recorded {path}")


def main() -> None:
    """Entry point of the ``marketfeed`` console script."""
    app()
