"""Write the sync and asyncio adapters from the public surface of the trio API.

``python -m netabase.adapters._generate`` rewrites ``_sync.py`` and ``_asyncio.py`` next to this
file; ``--check`` exits 1 if they are stale. Each public method, property and annotated instance
attribute of a source class becomes one adapter member with the same parameters:

* ``async def f(...) -> R``: sync ``def f(...) -> R`` / asyncio ``async def f(...) -> R``, one
  crossing into the trio runtime per call;
* ``def f(...) -> AsyncIterator[X]``: ``Iterator[X]`` / ``AsyncIterator[X]``, a page per crossing;
* anything else runs in the caller; a result that is itself a source class is wrapped.

``Iterable`` arguments are taken into a list in the caller, before the call crosses.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from .._database import Database
from .._permissions import Permissions, PrincipalView
from .._requests import DEFAULT_PAGE_SIZE
from .._store import Store
from .._transaction import Transaction, TransactionStore

HERE = Path(__file__).resolve().parent


@attrs.frozen
class Source:
    """A class of the trio API and how its adapters hold it."""

    cls: type
    name: str
    """Adapters are ``Sync{name}`` and ``Asyncio{name}``."""
    target: str
    """Annotation of what an adapter wraps."""
    where: str = '"netabase"'
    """Expression naming the model (or ``permissions``) in validation errors."""
    generic: bool = False
    """Whether the adapted class is generic in the record type ``T``."""


SOURCES = (
    Source(
        Store,
        "Store",
        "Store[T] | GuardedStore[T]",
        where="model_name(self._target.model)",
        generic=True,
    ),
    Source(Permissions, "Permissions", "Permissions", where='"permissions"'),
    Source(PrincipalView, "PrincipalView", "PrincipalView"),
    Source(Database, "Database", "Database"),
    Source(Transaction, "Transaction", "Transaction"),
    Source(
        TransactionStore,
        "TransactionStore",
        "TransactionStore[T]",
        where="model_name(self._target.model)",
        generic=True,
    ),
)

WRAPPED = {"Store": "Store", "GuardedStore": "Store", "Permissions": "Permissions"}
WRAPPED.update({"PrincipalView": "PrincipalView", "Database": "Database"})
WRAPPED.update({"Transaction": "Transaction", "TransactionStore": "TransactionStore"})
"""Result types the adapters wrap, and the adapter each becomes."""


@attrs.frozen
class Flavor:
    prefix: str
    crossing: str
    base: str
    describe: str
    is_async: bool


SYNC = Flavor("Sync", "TrioPortal", "SyncCrossing", "synchronous callers (no ``await``)", False)
ASYNCIO = Flavor("Asyncio", "Runner", "AsyncioCrossing", "asyncio callers", True)
FLAVORS = {"_sync.py": SYNC, "_asyncio.py": ASYNCIO}

IMPORTS = {
    "AsyncIterator": "collections.abc",
    "Callable": "collections.abc",
    "Iterable": "collections.abc",
    "Iterator": "collections.abc",
    "Sequence": "collections.abc",
    "Awaitable": "collections.abc",
    "Any": "typing",
    "Generic": "typing",
    "TypeVar": "typing",
    "overload": "typing",
    "Backend": "..backends",
    "Database": ".._database",
    "DatabaseStats": ".._database",
    "Explanation": ".._roles",
    "GuardedStore": ".._permissions",
    "Permissions": ".._permissions",
    "PrincipalView": ".._permissions",
    "Loaded": ".._store",
    "Transaction": ".._transaction",
    "TransactionStore": ".._transaction",
    "asyncio_transact": "._base",
    "sync_transact": "._base",
    "entered": "._base",
    "left": "._base",
    "Store": ".._store",
    "Referrer": "..actors._links",
    "Runner": ".._bridge",
    "TrioPortal": ".._portal",
    "SyncCrossing": "._base",
    "AsyncioCrossing": "._base",
    "AsyncioTxCrossing": "._base",
    "listed": "._base",
    "model_name": "._base",
}
BUILTIN = {"str", "int", "bool", "float", "bytes", "type", "list", "tuple", "dict", "None"}
BUILTIN |= {"T", "R"}

CALLER_SIDE = {
    "transact": {
        True: [
            "    async def transact(",
            "        self, fn: Callable[..., Awaitable[R]], *args: Any, retries: int = 10",
            "    ) -> R:",
            '        """``await fn(tx, *args)`` in a transaction, run again on',
            "        `TransactionConflict` (with jittered backoff) at most ``retries`` more times;",
            '        ``fn`` runs on the loop, given an `AsyncioTransaction`."""',
            "        return await asyncio_transact(self.transaction, fn, args, retries)",
        ],
        False: [
            "    def transact(self, fn: Callable[..., R], *args: Any, retries: int = 10) -> R:",
            '        """``fn(tx, *args)`` in a transaction, run again on `TransactionConflict`',
            "        (with jittered backoff) at most ``retries`` more times; ``fn`` runs in the",
            '        calling thread, given a `SyncTransaction`."""',
            "        return sync_transact(self.transaction, fn, args, retries)",
        ],
    }
}
"""Members whose function argument runs on the caller's side, written out per flavor."""


def adapted(annotation: str, flavor: Flavor) -> str:
    """``annotation`` with each wrapped class replaced by its adapter."""
    return re.sub(
        r"\b(" + "|".join(WRAPPED) + r")\b",
        lambda m: flavor.prefix + WRAPPED[m.group(1)],
        annotation,
    )


def wrapper_of(annotation: str) -> str | None:
    """The adapter class a result of this type is wrapped in, if any."""
    match = re.fullmatch(r"(\w+)(\[.*\])?", annotation)
    if match is None or match.group(1) not in WRAPPED:
        return None
    return WRAPPED[match.group(1)]


def members(source: Source) -> list[tuple[str, Any]]:
    """Public members of the source class in definition order, attributes first."""
    found: list[tuple[str, Any]] = [
        (name, annotation)
        for name, annotation in vars(source.cls).get("__annotations__", {}).items()
        if not name.startswith("_")
    ]
    annotated = {name for name, _ in found}
    for name, member in vars(source.cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property) or inspect.isfunction(member):
            found.append((name, member))
        elif name not in annotated:  # skipped silently, it would be missing from the adapters
            kind = type(member).__name__
            raise NotImplementedError(f"{source.cls.__name__}.{name}: a {kind} is not adapted")
    return found


def returns(function: Callable[..., Any]) -> str:
    annotation = inspect.signature(function).return_annotation
    assert isinstance(annotation, str), f"{function.__qualname__}: annotate its return"
    return annotation


def parameters(function: Callable[..., Any]) -> list[inspect.Parameter]:
    return list(inspect.signature(function).parameters.values())[1:]


def render_parameters(params: Sequence[inspect.Parameter]) -> str:
    out = ["self"]
    starred = False
    for param in params:
        kind = param.kind
        if kind is inspect.Parameter.KEYWORD_ONLY and not starred:
            out.append("*")
            starred = True
        text = param.name
        if kind is inspect.Parameter.VAR_POSITIONAL:
            text, starred = "*" + text, True
        elif kind is inspect.Parameter.VAR_KEYWORD:
            text = "**" + text
        if param.annotation is not inspect.Parameter.empty:
            text += f": {param.annotation}"
        if param.default is not inspect.Parameter.empty:
            default = param.default
            assert default is None or isinstance(default, bool | int | float | str), default
            text += f" = {default!r}"
        out.append(text)
        if kind is inspect.Parameter.POSITIONAL_ONLY and (
            params.index(param) == len(params) - 1
            or params[params.index(param) + 1].kind is not inspect.Parameter.POSITIONAL_ONLY
        ):
            out.append("/")
    return ", ".join(out)


def render_call(name: str, params: Sequence[inspect.Parameter]) -> str:
    args = []
    for param in params:
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            args.append(f"{param.name}={param.name}")
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            args.append(f"*{param.name}")
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            args.append(f"**{param.name}")
        else:
            args.append(param.name)
    return f"self._target.{name}({', '.join(args)})"


def docstring(member: Any, indent: str) -> list[str]:
    doc = inspect.getdoc(member)
    if not doc:
        return []
    lines = doc.splitlines()
    text = [f'{indent}"""{lines[0]}']
    text += [f"{indent}{line}" if line else "" for line in lines[1:]]
    text[-1] += '"""'
    return text


def render_method(source: Source, name: str, function: Any, flavor: Flavor) -> list[str]:
    ret = returns(function)
    params = parameters(function)
    indent = "    "
    if inspect.iscoroutinefunction(function):
        kind = "call"
        if wrapper_of(ret) is not None:
            raise NotImplementedError(f"{name}: an async method returning {ret} is not adapted")
        shown = ret
    elif ret.startswith("AsyncIterator["):
        kind = "pages"
        shown = ret if flavor.is_async else "Iterator[" + ret[len("AsyncIterator[") :]
    else:
        kind = "plain"
        shown = adapted(ret, flavor)
    head = "async def" if kind == "call" and flavor.is_async else "def"
    lines: list[str] = []
    for overload in typing.get_overloads(function):
        overload_ret = returns(overload)
        lines += [
            f"{indent}@overload",
            f"{indent}{head} {name}({render_parameters(parameters(overload))}) -> "
            f"{adapted(overload_ret, flavor)}: ...",
            "",
        ]
    lines.append(f"{indent}{head} {name}({render_parameters(params)}) -> {shown}:")
    lines += docstring(function, indent * 2)
    for param in params:
        if isinstance(param.annotation, str) and param.annotation.startswith("Iterable["):
            lines.append(
                f'{indent * 2}{param.name} = listed({source.where}, "{param.name}", {param.name})'
            )
    call = render_call(name, params)
    if kind == "call":
        crossing = "await self._run" if flavor.is_async else "self._run"
        lines.append(f"{indent * 2}return {crossing}(lambda: {call})")
    elif kind == "pages":
        size = "page_size" if any(p.name == "page_size" for p in params) else DEFAULT_PAGE_SIZE
        where = f"{flavor.prefix}{source.name}.{name}"
        lines.append(f'{indent * 2}return self._pages({call}, {size}, "{where}")')
    else:
        lines.append(f"{indent * 2}return {wrapped(ret, call, flavor)}")
    return lines


def wrapped(annotation: str, expression: str, flavor: Flavor) -> str:
    adapter = wrapper_of(annotation)
    if adapter is None:
        return expression
    return f"{flavor.prefix}{adapter}({expression}, self._crossing)"


def render_property(name: str, annotation: str, flavor: Flavor, doc: Any = None) -> list[str]:
    decorator = "@cached_property" if wrapper_of(annotation) else "@property"
    lines = [f"    {decorator}", f"    def {name}(self) -> {adapted(annotation, flavor)}:"]
    if doc is not None:
        lines += docstring(doc, " " * 8)
    lines.append(f"        return {wrapped(annotation, f'self._target.{name}', flavor)}")
    return lines


def render_class(source: Source, flavor: Flavor) -> list[str]:
    name = flavor.prefix + source.name
    generic = "[T]" if source.generic else ""
    base = flavor.base
    if flavor.is_async and source.cls is TransactionStore:
        base = "AsyncioTxCrossing"  # a cancelled write abandons the transaction
    bases = f"{base}, Generic[T]" if source.generic else base
    lines = [
        f"class {name}({bases}):",
        f'    """`{source.name}{generic}` for {flavor.describe}; generated from it, so see',
        f'    `{source.name}` for what each member does."""',
        "",
        f"    def __init__(self, target: {source.target}, crossing: {flavor.crossing}) -> None:",
        "        super().__init__(crossing)",
        "        self._target = target",
        "",
        "    def __repr__(self) -> str:",
        f'        return f"<netabase.{name} of {{self._target!r}}>"',
    ]
    if "__aenter__" in vars(source.cls):
        enter, exit_ = ("__aenter__", "__aexit__") if flavor.is_async else ("__enter__", "__exit__")
        head = "async def" if flavor.is_async else "def"
        crossing = "await self._run" if flavor.is_async else "self._run"
        once = source.cls is Transaction  # one transaction at a time per task or thread
        lines += [
            "",
            f"    {head} {enter}(self) -> {name}:",
            *(
                [
                    "        entered(self)",
                    "        try:",
                    f"            {crossing}(self._target.__aenter__)",
                    "        except BaseException:",
                    "            left(self)  # it never began: the task or thread is free again",
                    "            raise",
                ]
                if once
                else [f"        {crossing}(self._target.__aenter__)"]
            ),
            "        return self",
            "",
            f"    {head} {exit_}(self, *exc_info: Any) -> None:",
            *(["        left(self)"] if once else []),
            f"        {crossing}(lambda: self._target.__aexit__(*exc_info))",
        ]
    for member_name, member in members(source):
        lines.append("")
        if member_name in CALLER_SIDE:
            lines += CALLER_SIDE[member_name][flavor.is_async]
        elif isinstance(member, str):
            lines += render_property(member_name, member, flavor)
        elif isinstance(member, property):
            assert member.fget is not None
            lines += render_property(member_name, returns(member.fget), flavor, member.fget)
        else:
            lines += render_method(source, member_name, member, flavor)
    return lines


def render(flavor: Flavor, sources: Sequence[Source] = SOURCES) -> str:
    """The module of one flavor's adapters, formatted as committed."""
    body: list[str] = []
    for source in sources:
        body += ["", "", *render_class(source, flavor)]
    text = "\n".join(body)
    names = set(re.findall(r"\b[A-Za-z_]\w*\b", text))
    modules: dict[str, list[str]] = {}
    wanted = [n for n in IMPORTS if n in names] + ["Any", "Generic", "TypeVar"]
    for imported in dict.fromkeys(wanted):
        modules.setdefault(IMPORTS[imported], []).append(imported)
    named = ", ".join(f"`{source.name}`" for source in sources)
    header = [
        '"""Generated by ``python -m netabase.adapters._generate``: do not edit.',
        "",
        *textwrap.wrap(f'Adapters of {named}."""', 96),
        "",
        "from __future__ import annotations",
        "",
    ]
    if "cached_property" in names:
        header.append("from functools import cached_property")
    for module in sorted(modules, key=lambda m: (m.startswith("."), m)):
        header.append(f"from {module} import {', '.join(sorted(modules[module]))}")
    header += ["", 'T = TypeVar("T")']
    if re.search(r"\bR\b", text):
        header.append('R = TypeVar("R")')
    unknown = _annotation_names(sources) - set(IMPORTS) - BUILTIN
    if unknown:
        raise KeyError(f"add the imports of {sorted(unknown)} to IMPORTS")
    return _formatted("\n".join(header) + text + "\n")


def _annotation_names(sources: Sequence[Source]) -> set[str]:
    names: set[str] = set()
    for source in sources:
        for _, member in members(source):
            if isinstance(member, str):
                texts = [member]
            else:
                function = member.fget if isinstance(member, property) else member
                assert function is not None
                signature = inspect.signature(function)
                texts = [signature.return_annotation] + [
                    p.annotation for p in signature.parameters.values()
                ]
            for text in texts:
                if isinstance(text, str):
                    names.update(re.findall(r"\b[A-Za-z_]\w*\b", text))
    return names


def _formatted(text: str) -> str:
    """``text`` with its imports sorted and formatted by ruff, as the linters want it."""
    where = ["--stdin-filename", str(HERE / "_generated.py"), "-"]
    for command in (["check", "--select", "I", "--fix", "--quiet"], ["format"]):
        text = subprocess.run(
            [sys.executable, "-m", "ruff", *command, *where],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return text


def main(argv: Sequence[str] = sys.argv[1:]) -> int:
    stale = []
    for filename, flavor in FLAVORS.items():
        path = HERE / filename
        text = render(flavor)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(filename)
        if "--check" not in argv:
            path.write_text(text)
    if stale and "--check" in argv:
        print(f"stale: {', '.join(stale)}; run python -m netabase.adapters._generate")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
