"""The ``netabase`` command: demo, inspect, export, import, dump, restore, check, grant,
revoke, members, bench.

Models are named with ``--models``: ``package.module`` (every netabase model in it) or
``package.module:Customer,Order``; repeat the option for several modules. The default is the
demo shop's models (`netabase.demo`), so ``netabase inspect lmdb://./shop.db`` works after
``netabase demo``. Every failure prints one line on stderr and exits non-zero (2 for usage
errors); nothing is written by a command that failed before writing. A reader that stops
early (``| head``) is a normal end: exit 0, no message.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import errno
import functools
import importlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar, cast

import cattrs.preconf.json
import trio
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import demo as demo_module
from ._codec import guard_collections
from ._database import open_database
from ._dump import (
    FORMAT,
    VERSION,
    DumpError,
    claim_restore,
    grants,
    memberships,
    other_models,
    plan,
    release_restore,
    restoring,
    without_links,
)
from ._errors import NetabaseError, UnknownAction, ValidationError
from ._key_blocks import last_reserved, raise_counter
from ._model import ModelInfo, info_of
from ._permissions import _principal
from ._roles import Roles
from ._store import Store
from .backends._url import open_backend, parse_url

app = typer.Typer(
    name="netabase",
    help="netabase: inspect, move and check data in a netabase store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Console(Console):
    """A rich console whose closed output raises `BrokenPipeError` (rich's own exits 1)."""

    def on_broken_pipe(self) -> None:
        _silence_stdout()
        raise BrokenPipeError(errno.EPIPE, "output closed by its reader")


out = _Console()
err = _Console(stderr=True, soft_wrap=True)  # one message, one line

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


def _from_text(kind: type, parse: Callable[[str], Any]) -> Any:
    """A structure hook for a type JSON writes as text (uuid, Decimal, time)."""

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"expected {kind.__name__} text, got {type(value).__name__} {value!r}")
        try:
            return parse(value)
        except (ValueError, ArithmeticError):
            raise TypeError(f"{value!r} is not a {kind.__name__}") from None

    return structure


for _text, _parse in ((uuid.UUID, uuid.UUID), (decimal.Decimal, decimal.Decimal),
                      (datetime.time, datetime.time.fromisoformat)):  # fmt: skip
    _JSON.register_unstructure_hook(_text, str)
    _JSON.register_structure_hook(_text, _from_text(_text, _parse))

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


F = TypeVar("F", bound=Callable[..., Any])


def _closed_pipe(exc: BaseException) -> bool:
    """Whether ``exc`` (or every exception in a group) is a write to a reader that went away."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_closed_pipe(inner) for inner in exc.exceptions)
    return isinstance(exc, OSError) and exc.errno == errno.EPIPE


def _silence_stdout() -> None:
    """Send later writes, and the interpreter's final flush, to /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout has no file descriptor (captured in tests)
        pass


def command(name: str | None = None) -> Callable[[F], F]:
    """``app.command``, where output closed early (``netabase export ... | head``) is a normal
    end (exit 0, nothing printed) instead of click's silent exit 1, and a file that cannot be
    read or written is one line instead of a traceback."""

    def register(fn: F) -> F:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if _closed_pipe(exc):
                    _silence_stdout()
                    raise typer.Exit(0) from None
                if isinstance(exc, OSError):  # a file that cannot be read or written
                    where = f"{exc.filename}: " if exc.filename else ""
                    fail(f"{where}{exc.strerror or exc}")
                raise

        app.command(name)(guarded)
        return fn

    return register


def fail(message: str, status: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    raise typer.Exit(status)


def load_models(specs: list[str] | None) -> list[type]:
    """Resolve ``--models`` values to model classes."""
    models: list[type] = []
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)  # as `python -m` does: modules in the current directory
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
    info = _described(model)
    value: Any = text
    shown = repr(text) if len(text) <= 80 else f"{text[:60]!r}... ({len(text):,} characters)"
    if info.key_type is not str:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            pass
        except RecursionError:
            raise UsageProblem(
                f"{shown} is not a valid key for {info.name}: nested too deeply"
            ) from None
    try:
        key = _JSON.structure(value, cast(Any, info.key_type))
        info.encode_key(key)
    except Exception as exc:
        problem = "; ".join(_messages(exc)).removeprefix(f"{info.name}: ")
        raise UsageProblem(f"{shown} is not a valid key for {info.name}: {problem}") from None
    return key


def principal_or_exit(name: str, field: str = "principal") -> str:
    try:
        return _principal(name, field)
    except ValidationError as exc:
        fail(exc.problem, 2)


def action_or_exit(action: str, model: str, *, role: bool = False) -> str:
    """An action (or role) name checked against the roles the CLI opens databases with."""
    try:
        return Roles().check_role(action) if role else Roles().check_action(action, model)
    except UnknownAction as exc:
        fail(str(exc), 2)


def run_async(fn: Any, *args: Any) -> Any:
    """Run a trio function; netabase errors and usage problems become one-line messages."""
    try:
        return trio.run(fn, *args)
    except (UsageProblem, UnknownAction) as exc:
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


@command()
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


@command()
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


@command()
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
                    sink.flush()  # a reader gone early is noticed here, not after the report
            finally:
                if output is not None:
                    sink.close()
            return written

    written = run_async(main)
    err.print(f"exported {written:,} {model} records")


def _bar() -> tuple[Any, ...]:
    return (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            TimeElapsedColumn())  # fmt: skip


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each line of a file; text None for a line that is not UTF-8."""
    with path.open("rb") as raw:
        for number, line in enumerate(raw, 1):
            try:
                yield number, line.decode()
            except UnicodeDecodeError:
                yield number, None


def read_records(path: Path, cls: type) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, record or None, problem or None) for each non-blank line."""
    for number, line in _lines(path):
        if line is None:
            yield number, None, "not UTF-8 text"
            continue
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


@command("import")
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


def key_or_exit(model: type, text: str) -> Any:
    try:
        return parse_key(model, text)
    except UsageProblem as exc:
        fail(str(exc), 2)


@command()
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
    who = principal_or_exit(principal)
    action_or_exit(action, _described(cls).name)
    record_key = key_or_exit(cls, key)
    existing_or_exit(url)

    async def main() -> bool:
        async with open_database(url, models=classes) as db:
            explanation = await db.permissions.explain(who, action, cls, record_key)
            try:
                out.print(str(explanation), highlight=False, markup=False, soft_wrap=True)
            except OSError as exc:  # output closed early: the exit status still answers
                if exc.errno != errno.EPIPE:
                    raise
                _silence_stdout()
            return bool(explanation.allowed)

    if not run_async(main):
        raise typer.Exit(3)


# -- grant / revoke / members ----------------------------------------------------------------


@command()
def grant(
    url: str,
    principal: str,
    model: str,
    key: str,
    role: str,
    models: ModelsOption = None,
) -> None:
    """Give PRINCIPAL (a user or a group) ROLE on the MODEL record KEY and everything below it."""
    classes = models_or_exit(models)
    cls = model_or_exit(classes, model)
    who = principal_or_exit(principal)
    action_or_exit(role, _described(cls).name, role=True)
    record_key = key_or_exit(cls, key)
    existing_or_exit(url)

    async def main() -> None:
        async with open_database(url, models=classes) as db:
            await db.permissions.grant(who, cls, record_key, role)

    run_async(main)
    out.print(
        f"granted {role} on {_described(cls).name} {key} to {who}", highlight=False, markup=False
    )


@command()
def revoke(
    url: str,
    principal: str,
    model: str,
    key: str,
    role: Annotated[str | None, typer.Argument(help="default: every role held there")] = None,
    models: ModelsOption = None,
) -> None:
    """Take back ROLE (default: every role) that PRINCIPAL holds on the MODEL record KEY."""
    classes = models_or_exit(models)
    cls = model_or_exit(classes, model)
    who = principal_or_exit(principal)
    if role is not None:
        action_or_exit(role, _described(cls).name, role=True)
    record_key = key_or_exit(cls, key)
    existing_or_exit(url)

    async def main() -> int:
        async with open_database(url, models=classes) as db:
            revoked: int = await db.permissions.revoke(who, cls, record_key, role)
            return revoked

    revoked = run_async(main)
    what = role or "any role"
    name = _described(cls).name
    if revoked:
        out.print(
            f"revoked {revoked} role(s) of {who} on {name} {key}", highlight=False, markup=False
        )
    else:
        out.print(
            f"{who} held {what} on {name} {key} directly: nothing revoked",
            highlight=False,
            markup=False,
        )


@command()
def members(
    url: str,
    group: str,
    add: Annotated[list[str] | None, typer.Option("--add", help="add MEMBER (repeatable)")] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="remove MEMBER (repeatable)")
    ] = None,
    models: ModelsOption = None,
) -> None:
    """List the direct members of GROUP, one a line; --add / --remove change them first."""
    classes = models_or_exit(models)
    name = principal_or_exit(group, "group")
    added = [principal_or_exit(m, "member") for m in add or ()]
    removed = [principal_or_exit(m, "member") for m in remove or ()]
    existing_or_exit(url)

    async def main() -> list[str]:
        async with open_database(url, models=classes) as db:
            for member in added:
                await db.permissions.add_member(name, member)
            for member in removed:
                await db.permissions.remove_member(name, member)
            return [member async for _, member in memberships(db.backend, name)]

    found = run_async(main)
    for member in found:
        out.print(member, highlight=False, markup=False, soft_wrap=True)
    err.print(f"{name}: {len(found)} direct member(s)", highlight=False, markup=False)


# -- dump / restore --------------------------------------------------------------------------


def plan_or_exit(classes: list[type]) -> tuple[list[ModelInfo[Any]], dict[str, tuple[Any, ...]]]:
    """The models in restore order and, per model in a link cycle, the links to clear first."""
    infos = [_described(cls) for cls in classes]
    names = {info.name for info in infos}
    for info in infos:
        for link in info.links:
            if link.target.name not in names:
                fail(f"{link.name} links to {link.target.name}, which --models does not name", 2)
    try:
        return plan(infos)
    except DumpError as exc:
        fail(str(exc))


@command()
def dump(url: str, file: Path, models: ModelsOption = None) -> None:
    """Write the whole database to FILE as JSON Lines: every record of every model (link
    targets first), every grant and membership, the generated-key counters. FILE appears only
    when the dump is complete."""
    classes = models_or_exit(models)
    order, _ = plan_or_exit(classes)
    existing_or_exit(url)
    if not file.parent.is_dir() or file.is_dir():
        problem = "it is a directory" if file.is_dir() else f"no directory {file.parent}"
        fail(f"cannot write {file}: {problem}", 2)
    by_name = {info.name: info for info in order}
    # Its own name: two dumps to one FILE must not write into (and rename) each other's file.
    partial = file.with_name(f".{file.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")

    async def main() -> dict[str, int]:
        written = {"records": 0, "grants": 0, "members": 0}
        async with open_database(url, models=classes) as db:
            if await restoring(db.backend):
                raise DumpError(
                    f"{db.url}: a restore into it is running, or one did not finish, so what "
                    "it holds may be incomplete; nothing was dumped (finish the restore first, "
                    "with restore --force)"
                )
            total = sum([await db.store(info.cls).count() for info in order])
            with partial.open("x") as sink, Progress(*_bar(), console=err) as progress:

                def write(line: dict[str, Any]) -> None:
                    sink.write(json.dumps(line) + "\n")

                write({"format": FORMAT, "version": VERSION, "models": list(by_name)})
                task = progress.add_task("dump records", total=total)
                for info in order:
                    async for record in db.store(info.cls).scan():
                        write({"model": info.name, "record": _JSON.unstructure(record)})
                        written["records"] += 1
                        progress.advance(task)
                task = progress.add_task("dump permissions", total=None)
                async for principal, model, encoded, role in grants(db.backend):
                    target = by_name.get(model)
                    if target is None:
                        raise DumpError(
                            f"a grant to {principal!r} is on model {model!r}, which --models "
                            "does not name; nothing was written"
                        )
                    key = _JSON.unstructure(target.decode_key(encoded))
                    write({"grant": {"principal": principal, "model": model, "key": key,
                                     "role": role}})  # fmt: skip
                    written["grants"] += 1
                    progress.advance(task)
                async for group, member in memberships(db.backend):
                    write({"member": {"group": group, "member": member}})
                    written["members"] += 1
                    progress.advance(task)
                for info in order:  # the counters, so keys of removed records stay unused
                    if info.auto is int:
                        last = await last_reserved(db.backend, info)
                        write({"keys": {"model": info.name, "last": last}})
                        written["keys"] = written.get("keys", 0) + 1
                write({"end": written})
        return written

    try:
        counts = run_async(main)
        partial.replace(file)
    finally:
        partial.unlink(missing_ok=True)
    err.print(
        f"dumped {_many(counts['records'], 'record')} of {_many(len(order), 'model')}, "
        f"{_many(counts['grants'], 'grant')} and {_many(counts['members'], 'membership')} "
        f"to {file}",
        highlight=False,
        markup=False,
    )


def _many(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def read_dump(
    path: Path, by_name: dict[str, ModelInfo[Any]]
) -> Iterator[tuple[int, str, Any, str | None]]:
    """(line number, kind, value, problem or None) for each non-blank line of a dump; kind is
    header, record, grant, member, key or end (value None when the line has a problem)."""
    for number, line in _lines(path):
        if line is None:
            yield number, "", None, "not UTF-8 text"
            continue
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, "", None, f"malformed JSON: {exc.msg} at column {exc.colno}"
            continue
        except RecursionError:
            yield number, "", None, "JSON nested too deeply"
            continue
        kinds = ("model", "grant", "member", "keys", "end", "format")
        kind = next((k for k in kinds if k in data),
                    "") if isinstance(data, dict) else ""  # fmt: skip
        try:
            if kind == "model":
                yield number, "record", _dump_record(data, by_name), None
            elif kind == "grant":
                yield number, "grant", _dump_grant(data["grant"], by_name), None
            elif kind == "member":
                member = data["member"]
                group = _principal(member["group"], "group")
                yield number, "member", (group, _principal(member["member"], "member")), None
            elif kind == "keys":
                yield number, "key", _dump_keys(data["keys"], by_name), None
            elif kind == "end":
                yield number, "end", _end_counts(data["end"]), None
            elif kind == "format":
                yield number, "header", data, None
            else:
                yield number, "", None, "not a line of a netabase dump"
        except Exception as exc:
            if isinstance(exc, ValidationError) and exc.model == "permissions":
                problem = exc.problem  # a principal, group or member name
            else:
                problem = "; ".join(_messages(exc))
            where = {"grant": "grant: ", "member": "membership: ", "keys": "keys: ",
                     "end": "end line: "}  # fmt: skip
            yield number, kind, None, where.get(kind, "") + problem


def _end_counts(data: Any) -> dict[str, int]:
    """The end line's counts: whole numbers, not text or floats or booleans."""
    if not isinstance(data, dict) or not all(type(v) is int for v in data.values()):
        raise UsageProblem(f"the counts must be whole numbers, got {data!r}"[:200])
    return dict(data)


def _dump_keys(data: Any, by_name: dict[str, ModelInfo[Any]]) -> tuple[ModelInfo[Any], int]:
    """A keys line's model (one with generated int keys) and the last key it had reserved."""
    if not isinstance(data, dict):
        raise UsageProblem(f"expected an object with model and last, got {data!r}"[:200])
    name, last = data["model"], data["last"]
    info = by_name.get(name) if isinstance(name, str) else None
    if info is None:
        raise UsageProblem(f"model {name!r} is not among --models"[:200])
    if info.auto is not int:
        raise UsageProblem(f"{name} has no generated int keys (no `int = netabase.auto()` key)")
    if type(last) is not int or last < 0:
        raise UsageProblem(f"{name}: last must be a whole number >= 0, got {last!r}"[:200])
    try:
        info.encode_key(last)
    except NetabaseError as exc:  # an int too large for a key
        problem = "; ".join(_messages(exc))
        raise UsageProblem(f"{name}: last is not a possible key: {problem}"[:200]) from None
    return info, last


def _counted(counts: dict[str, int]) -> dict[str, int]:
    """``counts`` without a zero keys count (dumps without keys lines have none)."""
    return {kind: n for kind, n in counts.items() if kind != "keys" or n}


def _dump_record(data: dict[str, Any], by_name: dict[str, ModelInfo[Any]]) -> Any:
    name, fields = data["model"], data.get("record")
    info = by_name.get(name)
    if info is None:
        raise UsageProblem(f"model {name!r} is not among --models")
    if not isinstance(fields, dict):
        raise UsageProblem(f"the {name} record must be a JSON object, got {fields!r}")
    key = fields.get(info.key_field)
    try:
        record = _JSON.structure(fields, info.cls)
        info.check(record)
    except Exception as exc:
        problem = "; ".join(_messages(exc)).removeprefix(f"{name}: ")
        raise UsageProblem(f"{name} key {key!r} does not fit the model: {problem}") from None
    return info, record


def _dump_grant(data: dict[str, Any], by_name: dict[str, ModelInfo[Any]]) -> Any:
    info = by_name.get(data["model"])
    if info is None:
        raise UsageProblem(f"model {data['model']!r} is not among --models")
    key = _JSON.structure(data["key"], cast(Any, info.key_type))
    info.encode_key(key)
    return _principal(data["principal"]), info, key, Roles().check_role(data["role"])


def membership_cycle(contains: dict[str, list[tuple[str, int]]]) -> tuple[int, str] | None:
    """A membership line that closes a cycle of groups (which `add_member` would refuse after
    the records were written), as (line number, problem); one walk over the graph."""
    done: set[str] = set()
    for root in contains:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        todo = [iter(contains.get(root, ()))]
        while todo:
            step = next(todo[-1], None)
            if step is None:
                todo.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            member, number = step
            if member in on_path:
                loop = " -> ".join(repr(name) for name in [*path[path.index(member) :], member])
                return number, f"membership: a group would contain itself: {loop}"
            if member not in done:
                path.append(member)
                on_path.add(member)
                todo.append(iter(contains.get(member, ())))
    return None


def check_dump(
    path: Path, by_name: dict[str, ModelInfo[Any]], cleared: dict[str, tuple[Any, ...]]
) -> tuple[list[tuple[int, str]], dict[str, int], dict[str, int]]:
    """Every problem of a dump file, as (line number, problem), its line counts by kind and
    its record counts by model.
    Records must come after those of the models they link to (links inside a cycle aside)."""
    problems: list[tuple[int, str]] = []
    counts = {"records": 0, "grants": 0, "members": 0}
    by_model: dict[str, int] = {}
    inside = {name: {link.target.name for link in links} for name, links in cleared.items()}
    targets = {
        info.name: {link.target.name for link in info.links} - inside.get(info.name, set())
        for info in by_name.values()
    }
    must_be_done: dict[str, str] = {}  # target -> a model already seen that links to it
    contains: dict[str, list[tuple[str, int]]] = {}  # group -> (member, line number)
    counters: set[str] = set()  # models with a keys line
    end: dict[str, int] | None = None
    header_seen = False
    number = 0
    for number, kind, value, problem in read_dump(path, by_name):
        if problem is not None:
            problems.append((number, problem))
        elif end is not None:
            problems.append((number, "line after the end line"))
        elif not header_seen:
            header_seen = True
            if kind != "header" or value.get("format") != FORMAT:
                problems.append((number, "not a netabase dump (no header line)"))
                break
            if type(value.get("version")) is not int or value["version"] != VERSION:
                problems.append((number, f"dump format {value.get('version')!r}; this "
                                         f"netabase reads version {VERSION}"))  # fmt: skip
                break
            names = value.get("models")
            if not isinstance(names, list) or not all(isinstance(m, str) for m in names):
                problems.append((number, "the header's models must be a list of model names"))
                break
            missing = [m for m in names if m not in by_name]
            if missing:
                problems.append((number, f"the dump holds model(s) {', '.join(missing)}, which "
                                         "--models does not name"))  # fmt: skip
                break
        elif kind == "header":
            problems.append((number, "a second header line"))
        elif kind == "record":
            info, record = value
            if info.name in must_be_done:
                source = must_be_done[info.name]
                problems.append((number, f"{info.name} key {info.key_of(record)!r} comes after "
                                         f"{source} records that link to {info.name}"))  # fmt: skip
            for target in targets[info.name]:
                must_be_done.setdefault(target, info.name)
            counts["records"] += 1
            by_model[info.name] = by_model.get(info.name, 0) + 1
        elif kind == "end":
            end = value
        elif kind == "key":
            info, _ = value
            if info.name in counters:
                problems.append((number, f"keys: a second keys line for {info.name}"))
            counters.add(info.name)
            counts["keys"] = counts.get("keys", 0) + 1
        else:
            counts[f"{kind}s"] += 1
            if kind == "member":
                group, member = value
                contains.setdefault(group, []).append((member, number))
    if (cycle := membership_cycle(contains)) is not None:
        problems.append(cycle)
    if header_seen and not problems and end is None:
        problems.append((number, "truncated dump: no end line (the dump did not finish)"))
    elif end is not None and _counted(end) != _counted(counts) and not problems:
        problems.append((number, f"end line counts {end} but the file holds {counts}"))
    if not header_seen:
        problems.append((max(number, 1), "no header line: not a netabase dump"))
    return problems, counts, by_model


def _leaf(exc: BaseException) -> BaseException:
    """The first exception inside nested groups (a task's failure in a nursery)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def _concurrently(calls: list[Callable[[], Any]], done: Callable[[int], None]) -> None:
    """Await the calls 64 at a time (the permission actor batches concurrent writes)."""
    for start in range(0, len(calls), 64):
        chunk = calls[start : start + 64]
        try:
            async with trio.open_nursery() as nursery:
                for call in chunk:
                    nursery.start_soon(call)
        except BaseExceptionGroup as group:
            raise _leaf(group) from None
        done(len(chunk))


async def _contents(db: Any, order: list[ModelInfo[Any]]) -> str:
    """What a database already holds ("" if nothing), for refusing to restore over it."""
    counts = [f"{n:,} {info.name}" for info in order if (n := await db.store(info.cls).count())]
    held = [f"{', '.join(counts)} records"] if counts else []
    others = await other_models(db.backend, (info.name for info in order))
    if others:
        listed = ", ".join(f"{n:,} {name}" for name, n in others.items())
        held.append(f"{listed} records of models --models does not name")
    async for _ in grants(db.backend):
        held.append("grants")
        break
    async for _ in memberships(db.backend):
        held.append("memberships")
        break
    return ", ".join(held)


@command()
def restore(
    url: str,
    file: Path,
    models: ModelsOption = None,
    batch: Annotated[int, typer.Option(min=1, help="records per atomic batch")] = 500,
    force: Annotated[bool, typer.Option(help="restore into a database that is not empty")] = False,
) -> None:
    """Load a dump into an empty database: records in atomic batches (links validated), then
    grants and memberships, then generated-key counters are raised to the dump's (and past the
    keys restored). Every line is checked first; if any is bad, nothing is written."""
    classes = models_or_exit(models)
    order, cleared = plan_or_exit(classes)
    if not file.is_file():
        fail(f"no such file: {file}", 2)
    by_name = {info.name: info for info in order}
    problems, counts, by_model = check_dump(file, by_name, cleared)
    if problems:
        for number, problem in problems[:20]:
            err.print(f"{file}:{number}: {problem}", highlight=False, markup=False)
        more = " (first 20 shown)" if len(problems) > 20 else ""
        fail(f"{len(problems)} bad line(s){more}; nothing restored")
    second = sum(n for name, n in by_model.items() if name in cleared)

    async def main() -> dict[str, int]:
        async with open_database(url, models=classes) as db:
            token = await claim_restore(db.backend, force=force)
            if token is None:
                raise DumpError(
                    f"{db.url}: another restore into it is running, or one did not finish "
                    "(interrupted, or a batch failed), so what it holds may be incomplete; "
                    "restore into an empty database, or pass --force to write over it"
                )
            if not force and (held := await _contents(db, order)):
                await release_restore(db.backend, token)
                raise DumpError(
                    f"{db.url} is not empty (it holds {held}); restore into an empty "
                    "database, or pass --force to write over what is there"
                )
            restored: dict[str, int] = {}
            permissions: list[Callable[[], Any]] = []
            counters: dict[str, int] = {}
            with Progress(*_bar(), console=err) as progress:
                task = progress.add_task("restore records", total=counts["records"] + second)
                pending: list[tuple[int, Any]] = []
                pending_info: list[ModelInfo[Any]] = []

                async def flush(first_pass: bool) -> None:
                    info = pending_info[0]
                    try:
                        await db.store(info.cls).insert_many(record for _, record in pending)
                    except NetabaseError as exc:
                        where = _line_of(exc, pending, info)
                        first, last = pending[0][0], pending[-1][0]
                        raise NetabaseError(
                            f"{file}:{where}: {exc} (lines {first}-{last} not written; "
                            f"{sum(restored.values()):,} records before them were restored)"
                        ) from None
                    if first_pass:
                        restored[info.name] = restored.get(info.name, 0) + len(pending)
                    progress.advance(task, len(pending))
                    pending.clear()

                async def load(first_pass: bool) -> None:
                    for number, kind, value, _ in read_dump(file, by_name):
                        if kind == "grant" and first_pass:
                            principal, info, key, role = value
                            permissions.append(functools.partial(
                                db.permissions.grant, principal, info.cls, key, role))  # fmt: skip
                        elif kind == "member" and first_pass:
                            permissions.append(functools.partial(db.permissions.add_member, *value))
                        elif kind == "key" and first_pass:
                            counters[value[0].name] = value[1]
                        if kind != "record":
                            continue
                        info, record = value
                        links = cleared.get(info.name)
                        if links is None and not first_pass:
                            continue
                        if first_pass and links:
                            record = without_links(record, links)
                        if pending and (pending_info[0] is not info or len(pending) >= batch):
                            await flush(first_pass)
                        pending.append((number, record))
                        pending_info[:] = [info]
                    if pending:
                        await flush(first_pass)

                await load(first_pass=True)
                if second:
                    await load(first_pass=False)  # the links cleared above, now all exist
                task = progress.add_task("restore permissions", total=len(permissions))
                await _concurrently(permissions, lambda n: progress.advance(task, n))
            for info in order:  # never below the dump's counter nor a key restored
                if info.auto is int:
                    await raise_counter(db.backend, info, counters.get(info.name, 0))
            await release_restore(db.backend, token)
            return restored

    restored = run_async(main)
    each = ", ".join(f"{name} {n:,}" for name, n in restored.items())
    err.print(
        f"restored {_many(counts['records'], 'record')} ({each or 'none'}), "
        f"{_many(counts['grants'], 'grant')} and {_many(counts['members'], 'membership')} "
        f"into {url}",
        highlight=False,
        markup=False,
    )


# -- bench -----------------------------------------------------------------------------------

BENCH_EXTRA = "netabase bench needs the bench extra: pip install 'netabase[bench]'"


@command()
def bench(
    url: Annotated[
        str | None, typer.Argument(help="store to run against; default: a temporary LMDB")
    ] = None,
    clients: Annotated[int, typer.Option(min=1, help="concurrent clients")] = 64,
    ops: Annotated[int, typer.Option(min=1, help="point gets per client")] = 500,
    records: Annotated[int, typer.Option(min=1, help="records loaded first")] = 10_000,
    scripts: Annotated[bool, typer.Option(help="run benchmarks/ of a source checkout")] = False,
    full: Annotated[bool, typer.Option(help="with --scripts: full runs, not --quick")] = False,
) -> None:
    """Measure netabase on URL (bulk load, point gets, durable inserts from concurrent clients)
    against aiosqlite doing the same, in the same run. Writes BenchItem records to URL."""
    try:
        from . import _bench
    except ImportError as exc:
        if exc.name != "aiosqlite":
            raise
        fail(BENCH_EXTRA)
    if scripts:
        run_scripts(full)
        return
    if url is not None:
        try:
            open_backend(url)  # validates the URL and its options; opens nothing yet
        except NetabaseError as exc:
            fail(str(exc), 2)
    shape = _bench.Shape(clients, ops, records)
    with tempfile.TemporaryDirectory(prefix="netabase-bench-") as scratch:
        target = url or f"lmdb://{Path(scratch) / 'bench'}"
        with Progress(*_bar(), console=err) as progress:
            task = progress.add_task("bench", total=2 * len(_bench.PHASES))

            def step() -> None:
                progress.advance(task)

            ours: dict[str, float] = run_async(_bench.run_netabase, target, shape, step)
            theirs = asyncio.run(_bench.run_aiosqlite(Path(scratch) / "sqlite.db", shape, step))
    table = Table(title=f"{clients} clients on {target if url else 'a temporary LMDB'}")
    for column in ("workload", "netabase ops/s", "aiosqlite ops/s", "netabase / aiosqlite"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for phase in _bench.PHASES:
        table.add_row(
            phase,
            f"{ours[phase]:,.0f}",
            f"{theirs[phase]:,.0f}",
            f"{ours[phase] / theirs[phase]:.2f}x",
        )
    out.print(table)


def run_scripts(full: bool) -> None:
    """The benchmark scripts of a source checkout (``benchmarks/``), quickly unless ``full``."""
    try:
        import casbin  # noqa: F401  (benchmarks/permissions.py compares with it)
    except ImportError:
        fail(BENCH_EXTRA)
    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    if not folder.is_dir():
        fail("the benchmarks ship with the source checkout; run this from a git clone", 2)
    for script in [
        "codec.py",
        "store.py",
        "links.py",
        "transactions.py",
        "permissions.py",
        "asyncio_bridge.py",
    ]:
        out.rule(script)
        command = [sys.executable, script] + ([] if full else ["--quick"])
        if subprocess.run(command, cwd=folder, check=False).returncode != 0:
            fail(f"{script} failed")


# click's exception classes, whether typer vendors click or depends on it
_UsageError: type[Exception] = typer.BadParameter.__mro__[1]
_ClickException: type[Exception] = _UsageError.__mro__[1]


def run_cli(args: list[str] | None = None) -> int:
    """Run the command line; a usage error (unknown option, missing argument, ...) is one
    line on stderr and status 2."""
    try:
        result = app(args=args, prog_name="netabase", standalone_mode=False)
    except _UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `netabase`: the help text
            exc.show()  # type: ignore[attr-defined]
            return 2
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = exc.format_message()  # type: ignore[attr-defined]
        err.print(f"[bold red]error:[/] {escape(message)}{escape(hint)}", highlight=False)
        return 2
    except _ClickException as exc:
        exc.show()  # type: ignore[attr-defined]
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except typer.Abort:
        err.print("aborted", highlight=False)
        return 1
    return result if isinstance(result, int) else 0


def main() -> None:
    try:
        status = run_cli()
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):  # the reader went away after the last write
            _silence_stdout()
    sys.exit(status)


if __name__ == "__main__":
    main()
