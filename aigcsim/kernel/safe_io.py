"""Reading untrusted input files: bounded bytes, strict decoding, bounded YAML.

Every file a user hands the tool (a scenario, a sweep, a backend config, a
``captions.json``) goes through here, so a hostile or odd file either loads or
raises :class:`~aigcsim.kernel.errors.UserInputError` with a one-line reason that
names the file (and the line where there is one):

* :func:`read_bytes` reads at most ``limit_bytes`` (a larger file is refused, not
  truncated) and refuses folders, devices and FIFOs;
* :func:`decode_text` decodes UTF-8 (a BOM is dropped), refuses binary files (NUL
  bytes) and names the line and column of the first undecodable byte;
* :func:`load_yaml` parses with :class:`BoundedSafeLoader`: PyYAML's safe loader
  (plain data only, never constructs Python objects) that also refuses duplicate
  keys, nesting deeper than ``max_depth``, self-referencing anchors and aliases
  that expand beyond ``max_nodes`` nodes (the "billion laughs" bomb).

Messages never echo more than :data:`ECHO_CHARS` characters of user data
(:func:`shorten`).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from aigcsim.kernel.errors import UserInputError

MIB = 1024 * 1024
SCENARIO_LIMIT_BYTES = 1 * MIB
"""Largest scenario / sweep / backend-config file read (shipped ones are < 10 kB)."""
JSON_LIMIT_BYTES = 16 * MIB
"""Largest JSON side file read (``captions.json``, manifests)."""
MAX_DEPTH = 32
"""Deepest YAML nesting accepted (shipped scenarios nest 5 levels)."""
MAX_NODES = 100_000
"""Most YAML nodes accepted after expanding aliases."""
ECHO_CHARS = 80
"""Most characters of a user value repeated in an error message."""


def shorten(value: Any, limit: int = ECHO_CHARS) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters (``...`` marks a cut).

    Containers are shown by a bounded walk, so a huge or self-referencing value
    costs O(limit), not O(size)."""
    text = _bounded_repr(value, limit + 1)
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


def _bounded_repr(value: Any, budget: int, depth: int = 0) -> str:
    if depth > 4:
        return "..."
    if isinstance(value, dict):
        parts, used = [], 2
        for k, v in value.items():
            item = f"{_bounded_repr(k, budget, depth + 1)}: {_bounded_repr(v, budget, depth + 1)}"
            parts.append(item)
            used += len(item) + 2
            if used > budget:
                parts.append("...")
                break
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, list | tuple):
        parts, used = [], 2
        for v in value:
            item = _bounded_repr(v, budget, depth + 1)
            parts.append(item)
            used += len(item) + 2
            if used > budget:
                parts.append("...")
                break
        return "[" + ", ".join(parts) + "]"
    if isinstance(value, str) and len(value) > budget:
        return repr(value[:budget])
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ never reaches here from YAML data, but be total
        text = f"<{type(value).__name__}>"
    return text[: budget + 1]


def read_bytes(path: str | Path, what: str, limit_bytes: int = SCENARIO_LIMIT_BYTES) -> bytes:
    """The bytes of ``path``, refusing non-regular files and files over ``limit_bytes``.

    ``what`` names the file's role in messages (``"scenario"``, ``"--backend-config"``).
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise UserInputError(f"cannot read {what} '{p}': {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserInputError(f"{what} '{p}' is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UserInputError(f"{what} '{p}' is not a regular file (a device, FIFO or socket)")
    if st.st_size > limit_bytes:
        raise UserInputError(
            f"{what} '{p}' is {st.st_size:,} bytes; at most {limit_bytes:,} are read "
            "(is this the right file?)"
        )
    try:
        with p.open("rb") as fh:
            data = fh.read(limit_bytes + 1)
    except OSError as exc:
        raise UserInputError(f"cannot read {what} '{p}': {exc.strerror}") from None
    if len(data) > limit_bytes:  # grew while we read it
        raise UserInputError(f"{what} '{p}' is larger than {limit_bytes:,} bytes")
    return data


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text of ``data`` (leading BOM dropped); binary or undecodable data raises
    :class:`UserInputError` naming ``name`` and the line/column of the bad byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserInputError(f"'{name}' is UTF-16 text; save the file as UTF-8 text")
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise UserInputError(
            f"'{name}' is a binary file, not text (NUL byte on line {line}); "
            "expected a UTF-8 text file"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = data[:start].count(b"\n") + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise UserInputError(
            f"'{name}' line {line}, column {column}: byte 0x{data[start]:02x} is not UTF-8; "
            "save the file as UTF-8 text"
        ) from None


def read_text(path: str | Path, what: str, limit_bytes: int = SCENARIO_LIMIT_BYTES) -> str:
    """:func:`read_bytes` then :func:`decode_text`."""
    return decode_text(read_bytes(path, what, limit_bytes), str(path))


class YamlLimitError(yaml.YAMLError):
    """The document breaks one of :class:`BoundedSafeLoader`'s limits."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with duplicate keys refused, nesting depth bounded and
    alias expansion bounded (counted on the composed node graph, before anything is
    built, in time linear in the document size)."""

    max_depth = MAX_DEPTH
    max_nodes = MAX_NODES

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise YamlLimitError(
                    f"nesting deeper than {self.max_depth} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Node) -> Any:
        _check_expanded_size(node, self.max_nodes)
        return super().construct_document(node)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        "found an unhashable key",
                        key_node.start_mark,
                    ) from None
                if key in seen:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {shorten(key)} (first on line {seen[key].line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _check_expanded_size(root: Node, max_nodes: int) -> None:
    """Raise if ``root`` with every alias expanded has more than ``max_nodes`` nodes
    or refers to itself. Iterative (no recursion), memoised per node."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(size[id(c)] for c in children)
            if total > max_nodes:
                raise YamlLimitError(
                    f"aliases expand to more than {max_nodes:,} nodes", node.start_mark
                )
            size[key] = total
            continue
        if key in size:
            continue
        if key in on_path:
            raise YamlLimitError("an anchor refers to itself (a recursive alias)", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                raise YamlLimitError(
                    "an anchor refers to itself (a recursive alias)", child.start_mark
                )
            if id(child) not in size:
                stack.append((child, False))


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(text: str, name: str) -> Any:
    """Parse one YAML document with :class:`BoundedSafeLoader`; errors name ``name``,
    the line and column, and never echo more than a line of the input."""
    try:
        return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise UserInputError(f"'{name}' is not valid YAML{_where(exc)}: {_problem(exc)}") from None
    except RecursionError:  # belt and braces: the depth check should come first
        raise UserInputError(f"'{name}': nesting too deep") from None


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f" at line {mark.line + 1}, column {mark.column + 1}"
    position = getattr(exc, "position", None)
    return f" at character {position}" if position is not None else ""


def _problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        return f"character 0x{exc.character:x} is not allowed in YAML"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return shorten_text(str(problem))


def shorten_text(text: str, limit: int = 2 * ECHO_CHARS) -> str:
    """One line of at most ``limit`` characters."""
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_yaml_file(path: str | Path, what: str, limit_bytes: int = SCENARIO_LIMIT_BYTES) -> Any:
    """Read, decode and parse a YAML file (bounded in size, depth and aliases)."""
    return load_yaml(read_text(path, what, limit_bytes), str(path))


def read_json_file(path: str | Path, what: str, limit_bytes: int = JSON_LIMIT_BYTES) -> Any:
    """Read, decode and parse a JSON file; errors name the file, line and column."""
    text = read_text(path, what, limit_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(
            f"{what} '{path}' is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise UserInputError(f"{what} '{path}': JSON nested too deeply") from None


def sqlite_uri(path: str | Path, mode: str = "ro") -> str:
    """An SQLite ``file:`` URI for ``path`` with ``?``, ``#`` and ``%`` quoted, so a
    file name can never add URI parameters (use with ``sqlite3.connect(uri=True)``)."""
    absolute = Path(path).absolute().as_posix()
    return f"file:{quote(absolute, safe='/')}?mode={mode}"


def bounded_message(text: str, line_chars: int = 400, max_lines: int = 40) -> str:
    """An error message as printed: lines cut to ``line_chars``, at most ``max_lines``
    lines (a last resort, so no message can echo pages of user data)."""
    lines = text.splitlines() or [""]
    out = [ln if len(ln) <= line_chars else ln[: line_chars - 3] + "..." for ln in lines]
    if len(out) > max_lines:
        out = out[:max_lines] + [f"... ({len(lines) - max_lines} more lines)"]
    return "\n".join(out)
