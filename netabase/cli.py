"""The ``netabase`` command: demo, inspect, export, import, check, bench.

Models are named with ``--models``: ``package.module`` (every netabase model in it) or
``package.module:Customer,Order``; repeat the option for several modules. The default is the
demo shop's models (`netabase.demo`), so ``netabase inspect lmdb://./shop.db`` works after
``netabase demo``. Every failure prints one line on stderr and exits non-zero; nothing is
written by a command that failed before writing.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn, cast

import cattrs.preconf.json
import trio
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import demo as demo_module
from ._codec import guard_collections
from ._database import open_database
from ._errors import NetabaseError, ValidationError
from ._model import ModelInfo, info_of
from ._store import Store
from .backends._url import open_backend, parse_url

app = typer.Typer(
    name="netabase",
    help="netabase: inspect, move and check data in a netabase store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)  # one message, one line

_JSON = cattrs.preconf.json.make_converter(forbid_extra_keys=True)  # nested records too


def _exactly(kind: type, accepts: tuple[type, ...]) -> Any:
    """A structure hook taking only JSON values of the field's own type (no str(42), no
    int(19.99)): a file that does not match the model is reported, never quietly converted."""

    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, accepts):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return kind(value)

    return structure


for _kind, _accepts in ((str, (str,)), (int, (int,)), (float, (int, float)), (bool, (bool,))):
    _JSON.register_structure_hook(_kind, _exactly(_kind, _accepts))
guard_collections(_JSON)  # no tuple of a str's characters or a map's keys
ModelsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--models",
        "-m",
        help="module or module:Model,Model (repeatable); default: the demo shop's models",
    ),
]


class UsageProblem(Exception):
    """Bad command-line input: shown as one line, exit status 2."""


def fail(message: str, status: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(status)


def load_models(specs: list[str] | None) -> list[type]:
    """Resolve ``--models`` values to model classes."""
    models: list[type] = []
    for spec in specs or ["netabase.demo"]:
        module_name, _, names = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # the module's own import-time errors too
            raise UsageProblem(f"cannot import models module {module_name!r}: {exc}") from None
        if names:
            for name in names.split(","):
                found = getattr(module, name.strip(), None)
                if not isinstance(found, type) or _info(found) is None:
                    raise UsageProblem(f"{module_name} has no netabase model {name.strip()!r}")
                models.append(found)
        else:
            found_any = [v for v in vars(module).values() if isinstance(v, type) and _info(v)]
            if not found_any:
                raise UsageProblem(f"module {module_name} defines no netabase models")
            models.extend(m for m in found_any if m not in models)
    return models


def _info(cls: type) -> ModelInfo[Any] | None:
    return info_of(cls)


def _described(cls: type) -> ModelInfo[Any]:
    info: ModelInfo[Any] | None = info_of(cls)
    assert info is not None, f"{cls!r} is not a netabase model"
    return info


def _disk_size(path: str) -> int | None:
    """Bytes of the files directly in ``path`` (an LMDB environment), None if not a directory."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def pick_model(models: list[type], name: str) -> type:
    for model in models:
        info = _described(model)
        if name in (info.name, model.__name__):
            return model
    known = ", ".join(_described(m).name for m in models)
    raise UsageProblem(f"unknown model {name!r}; known: {known}")


def parse_key(model: type, text: str) -> Any:
    """A key from the command line, as the model's key type (JSON for tuples and numbers)."""
    key_type = _described(model).key_type
    if key_type is str:
        return text
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError:
        value = text
    try:
        return _JSON.structure(value, cast(Any, key_type))
    except Exception as exc:
        raise UsageProblem(f"{text!r} is not a {_described(model).name} key: {exc}") from None


def run_async(fn: Any, *args: Any) -> Any:
    """Run a trio function; netabase errors and usage problems become one-line messages."""
    try:
        return trio.run(fn, *args)
    except UsageProblem as exc:
        fail(str(exc), 2)
    except NetabaseError as exc:
        fail(str(exc))


def existing_or_exit(url: str) -> None:
    """Refuse to read an LMDB path that holds no database (opening it would create one, and a
    mistyped path would look like an empty store)."""
    try:
        open_backend(url)  # validates the URL and its options; opens nothing yet
        parsed = parse_url(url)
    except NetabaseError as exc:
        fail(str(exc))
    location = Path(parsed.location)
    if parsed.scheme == "lmdb" and parsed.location and not (location / "data.mdb").is_file():
        fail(f"no netabase database at {parsed.location} (nothing there was changed)")


def models_or_exit(specs: list[str] | None) -> list[type]:
    try:
        return load_models(specs)
    except UsageProblem as exc:
        fail(str(exc), 2)


def model_or_exit(models: list[type], name: str) -> type:
    try:
        return pick_model(models, name)
    except UsageProblem as exc:
        fail(str(exc), 2)


# -- demo ------------------------------------------------------------------------------------


@app.command()
def demo(
    url: Annotated[str, typer.Argument(help="where to run it")] = "lmdb://./shop.db",
    clients: Annotated[int, typer.Option(min=1)] = 64,
    seconds: Annotated[float, typer.Option(min=0.1)] = 5.0,
) -> None:
    """Run the shop workload (many concurrent clients placing linked orders) and summarise."""
    settings = demo_module.Settings(url, clients, seconds)
    with Progress(
        TextColumn("[bold]shop workload"), BarColumn(), TaskProgressColumn(), console=out
    ) as progress:
        task = progress.add_task("run", total=1.0)
        result: demo_module.Result = run_async(
            demo_module.run, settings, lambda done: progress.update(task, completed=done)
        )
    summary = Table(title=f"{clients} clients, {result.elapsed:.1f} s on {url}")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    summary.add_row("store operations/s", f"{result.operations / result.elapsed:,.0f}")
    summary.add_row("orders placed/s (durable)", f"{result.orders_placed / result.elapsed:,.0f}")
    summary.add_row("orders stored", f"{result.orders_stored:,}")
    out.print(summary)
    out.print(stats_table(result.stats))


def stats_table(stats: Any) -> Table:
    table = Table(title=f"actors of {stats.url}")
    for column in ("actor", "served", "batches", "mean batch", "hit %", "p50 µs", "p99 µs"):
        table.add_column(column, justify="left" if column == "actor" else "right")
    table.add_column("restarts", justify="right")
    for name, s in stats.actors.items():
        table.add_row(
            name,
            f"{s.requests:,}",
            f"{s.batches:,}",
            f"{s.mean_batch:.1f}",
            f"{100 * s.cache_hit_ratio:.1f}",
            f"{1e6 * s.p50_latency:.0f}",
            f"{1e6 * s.p99_latency:.0f}",
            str(s.restarts),
        )
    return table


# -- inspect ---------------------------------------------------------------------------------


@app.command()
def inspect(url: str, models: ModelsOption = None) -> None:
    """Show the models, their record counts, the store's size on disk and the actors."""
    classes = models_or_exit(models)
    existing_or_exit(url)

    async def main() -> None:
        async with open_database(url, models=classes) as db:
            table = Table(title=f"netabase {db.url}")
            for column in ("model", "key", "links", "parent", "records"):
                table.add_column(column, justify="right" if column == "records" else "left")
            for model in classes:
                info = _described(model)
                links = ", ".join(f"{link.field}->{link.target.name}" for link in info.links)
                parent = info.parent.field if info.parent is not None else ""
                count = await db.store(model).count()
                table.add_row(info.name, info.key_field, links, parent, f"{count:,}")
            out.print(table)
            path = getattr(db.backend, "path", None)
            size = await trio.to_thread.run_sync(_disk_size, path) if path else None
            if size is not None:
                out.print(f"on disk: {path} ({size / 2**20:.1f} MiB)")
            out.print(stats_table(db.stats()))

    run_async(main)


# -- export / import -------------------------------------------------------------------------


@app.command()
def export(
    url: str,
    model: str,
    models: ModelsOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="default: stdout")] = None,
) -> None:
    """Write every record of MODEL as JSON Lines, in key order."""
    classes = models_or_exit(models)
    cls = model_or_exit(classes, model)
    existing_or_exit(url)
    if output is not None and not output.parent.is_dir():
        fail(f"cannot write {output}: no directory {output.parent}", 2)

    async def main() -> int:
        async with open_database(url, models=classes) as db:
            store: Store[Any] = db.store(cls)
            total = await store.count()
            sink = output.open("w") if output is not None else sys.stdout
            written = 0
            try:
                with Progress(*_bar(), console=err, disable=output is None) as progress:
                    task = progress.add_task(f"export {model}", total=total)
                    async for record in store.scan():
                        sink.write(json.dumps(_JSON.unstructure(record)) + "\n")
                        written += 1
                        progress.advance(task)
            finally:
                if output is not None:
                    sink.close()
            return written

    written = run_async(main)
    err.print(f"exported {written:,} {model} records")


def _bar() -> tuple[Any, ...]:
    return (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            TimeElapsedColumn())  # fmt: skip


def read_records(path: Path, cls: type) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, record or None, problem or None) for each non-blank line."""
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"malformed JSON: {exc.msg} at column {exc.colno}"
                continue
            except RecursionError:
                yield number, None, "JSON nested too deeply"
                continue
            try:
                yield number, _described(cls).structure(data, _JSON), None
            except Exception as exc:
                problem = "; ".join(_messages(exc))
                yield number, None, f"does not fit {cls.__name__}: {problem}"


def _messages(exc: BaseException) -> list[str]:
    if isinstance(exc, ValidationError):
        return [exc.problem]
    if isinstance(exc, BaseExceptionGroup):
        return [m for inner in exc.exceptions for m in _messages(inner)]
    where = next((n for n in getattr(exc, "__notes__", ()) if "@ attribute" in n), "")
    field = where.rpartition("@ attribute ")[2] if where else ""
    if isinstance(exc, KeyError):
        return [f"missing field {exc.args[0]!r}"]
    message = str(exc) or type(exc).__name__
    return [f"{field}: {message}" if field else message]


@app.command("import")
def import_(
    url: str,
    model: str,
    path: Path,
    models: ModelsOption = None,
    batch: Annotated[int, typer.Option(min=1, help="records per atomic batch")] = 500,
) -> None:
    """Load JSON Lines into MODEL. Every line is checked first; if any is bad, nothing is
    written. Records then go in atomic batches (links validated): a failing batch writes
    nothing and stops the import."""
    classes = models_or_exit(models)
    cls = model_or_exit(classes, model)
    if not path.is_file():
        fail(f"no such file: {path}", 2)
    problems = [(n, p) for n, _, p in read_records(path, cls) if p is not None]
    if problems:
        for number, problem in problems[:20]:
            err.print(f"{path}:{number}: {problem}", highlight=False, markup=False)
        more = " (first 20 shown)" if len(problems) > 20 else ""
        fail(f"{len(problems)} bad line(s){more}; nothing imported")

    async def main() -> int:
        async with open_database(url, models=classes) as db:
            store: Store[Any] = db.store(cls)
            info = _described(cls)
            done = 0
            pending: list[tuple[int, Any]] = []
            with Progress(*_bar(), console=err) as progress:
                task = progress.add_task(f"import {model}", total=None)

                async def flush() -> None:
                    nonlocal done
                    try:
                        await store.insert_many(record for _, record in pending)
                    except NetabaseError as exc:
                        where = _line_of(exc, pending, info)
                        first, last = pending[0][0], pending[-1][0]
                        raise NetabaseError(
                            f"{path}:{where}: {exc} (lines {first}-{last} not written; "
                            f"{done:,} records before them were imported)"
                        ) from None
                    done += len(pending)
                    progress.advance(task, len(pending))
                    pending.clear()

                for number, record, _ in read_records(path, cls):
                    pending.append((number, record))
                    if len(pending) >= batch:
                        await flush()
                if pending:
                    await flush()
            return done

    imported = run_async(main)
    err.print(f"imported {imported:,} {model} records")


def _line_of(exc: NetabaseError, pending: list[tuple[int, Any]], info: ModelInfo[Any]) -> str:
    key = getattr(exc, "key", None)
    for number, record in pending:
        if key is not None and info.key_of(record) == key:
            return str(number)
    return f"{pending[0][0]}-{pending[-1][0]}"


# -- check -----------------------------------------------------------------------------------


@app.command()
def check(
    url: str,
    principal: str,
    action: str,
    model: str,
    key: str,
    models: ModelsOption = None,
) -> None:
    """Explain whether PRINCIPAL may ACTION the MODEL record KEY (exit 0 if allowed, 3 if not)."""
    classes = models_or_exit(models)
    cls = model_or_exit(classes, model)
    existing_or_exit(url)

    async def main() -> bool:
        async with open_database(url, models=classes) as db:
            explanation = await db.permissions.explain(principal, action, cls, parse_key(cls, key))
            out.print(str(explanation), highlight=False, markup=False)
            return bool(explanation.allowed)

    if not run_async(main):
        raise typer.Exit(3)


# -- bench -----------------------------------------------------------------------------------


@app.command()
def bench(
    full: Annotated[bool, typer.Option(help="full runs instead of --quick ones")] = False,
) -> None:
    """Run the benchmark scripts of a source checkout (``benchmarks/``), quickly by default."""
    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    if not folder.is_dir():
        fail("the benchmarks ship with the source checkout; run this from a git clone", 2)
    scripts = ["codec.py", "store.py", "links.py", "permissions.py", "asyncio_bridge.py"]
    for script in scripts:
        out.rule(script)
        command = [sys.executable, script] + ([] if full else ["--quick"])
        if subprocess.run(command, cwd=folder, check=False).returncode != 0:
            fail(f"{script} failed")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
