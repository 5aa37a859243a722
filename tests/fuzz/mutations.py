"""Hostile and odd scenario files derived from the shipped ones (issue 12).

Each mutation class takes a shipped scenario (its text and parsed data) and a seeded
``random.Random`` and returns a :class:`Mutant`: the bytes of a new scenario file,
optional ``--set`` overrides, and what a good error message must name (the dotted
key that was broken, or the file for problems of the file itself). The classes
follow the table of issue 12: non-UTF-8 bytes, deep nesting, binary files, alias
bombs, huge / NaN / infinite numbers, long labels, path-like labels, duplicate keys,
unknown keys, wrong types, plus deleted keys, truncated files, bad plug-ins, bad
encoder levels, bad table sources, bad ``--set`` values and bad variants.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aigcsim.sim.scenario import builtin_scenarios

FILE = "<file>"
"""Placeholder in :attr:`Mutant.expect` for the scenario file's path."""


@dataclass(frozen=True)
class Mutant:
    """One generated input.

    Attributes:
        kind: the mutation class.
        base: the shipped scenario it came from.
        data: the scenario file's bytes.
        overrides: ``--set`` arguments to pass with it.
        expect: a rejection (exit 2) must name one of these (dotted keys, or
            :data:`FILE`); a dotted key also counts when the message names one of
            its parents (errors of a whole section). Empty: no check.
        note: what was done, for reports.
    """

    kind: str
    base: str
    data: bytes
    overrides: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    note: str = ""


@dataclass
class Base:
    name: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


def shipped() -> list[Base]:
    """The shipped scenarios (the fuzz seeds)."""
    out = []
    for name, path in builtin_scenarios().items():
        text = path.read_text(encoding="utf-8")
        out.append(Base(name, text, yaml.safe_load(text)))
    return out


# ------------------------------------------------------------------ tree helpers
Path_ = tuple[Any, ...]


def _walk(node: Any, path: Path_ = ()) -> list[tuple[Path_, Any]]:
    out = [(path, node)]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _walk(v, (*path, i))
    return out


def _leaves(data: Any, pred: Callable[[Any], bool] | None = None) -> list[Path_]:
    return [
        p
        for p, v in _walk(data)
        if p and not isinstance(v, dict | list) and (pred is None or pred(v))
    ]


def _mappings(data: Any) -> list[Path_]:
    return [p for p, v in _walk(data) if isinstance(v, dict)]


def _get(data: Any, path: Path_) -> Any:
    for p in path:
        data = data[p]
    return data


def _set(data: Any, path: Path_, value: Any) -> Any:
    import copy

    data = copy.deepcopy(data)
    node = data
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return data


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def _dump(data: Any) -> bytes:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000).encode()


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _key_expect(path: Path_) -> tuple[str, ...]:
    """A broken key inside a variant's ``set`` may be reported under the variant."""
    dotted = _dotted(path)
    if len(path) >= 2 and path[0] == "variants":
        return (dotted, f"variants.{path[1]}")
    if len(path) >= 1 and path[0] == "sweep":
        return (dotted, "sweep")
    return (dotted,)


# ---------------------------------------------------------------- mutation classes
def non_utf8(b: Base, rng: random.Random) -> Mutant:
    raw = b.text.encode()
    lines = raw.split(b"\n")
    i = rng.randrange(len(lines))
    how = rng.choice(["latin1-comment", "latin1-value", "utf16", "lone-continuation", "cp1252"])
    if how == "utf16":
        data = b.text.encode("utf-16")
    elif how == "latin1-value":
        data = raw.replace(b"\n", b"\ndescription: caf\xe9 cr\xe8me\n", 1)
    elif how == "lone-continuation":
        lines[i] += b" # \x80\xbf"
        data = b"\n".join(lines)
    elif how == "cp1252":
        lines[i] += b" # \x93quoted\x94"
        data = b"\n".join(lines)
    else:
        lines[i] += b" # na\xefve"
        data = b"\n".join(lines)
    return Mutant("non-utf8", b.name, data, expect=(FILE,), note=how)


def deep_nesting(b: Base, rng: random.Random) -> Mutant:
    depth = rng.choice([5, 31, 40, 100, 500, 3000])
    style = rng.choice(["list", "map"])
    path = rng.choice(_leaves(b.data))
    token = "__NESTED__"
    text = _dump(_set(b.data, path, token)).decode()
    nested = (
        "[" * depth + "1" + "]" * depth if style == "list" else "{a: " * depth + "1" + "}" * depth
    )
    data = text.replace(token, nested, 1).encode()
    return Mutant(
        "deep-nesting", b.name, data, expect=(FILE, *_key_expect(path)), note=f"{style} {depth}"
    )


def binary(b: Base, rng: random.Random) -> Mutant:
    how = rng.choice(["png", "random", "nul-in-text", "gzip", "empty", "only-bom"])
    if how == "png":
        data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.randbytes(200)
    elif how == "random":  # binary files hold NUL bytes; random text is "truncate"'s job
        data = rng.randbytes(rng.choice([1, 64, 4096]))
        k = rng.randrange(len(data) + 1)
        data = data[:k] + b"\x00" + data[k:]
    elif how == "nul-in-text":
        raw = b.text.encode()
        k = rng.randrange(len(raw))
        data = raw[:k] + b"\x00" + raw[k:]
    elif how == "gzip":
        import gzip

        data = gzip.compress(b.text.encode())
    elif how == "empty":
        data = b""
    else:
        data = b"\xef\xbb\xbf"
    # empty files and a lone BOM are valid (all defaults): nothing to name
    expect = () if how in ("empty", "only-bom") else (FILE,)
    return Mutant("binary", b.name, data, expect=expect, note=how)


def alias_bomb(b: Base, rng: random.Random) -> Mutant:
    levels = rng.choice([2, 4, 6, 9, 12])
    width = rng.choice([2, 5, 9, 10])
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    where = rng.choice(["top", "under-key", "params"])
    if where == "top":
        data = ("\n".join(lines) + "\n" + b.text).encode()
        expect = (FILE, "a0")
    elif where == "under-key":
        data = (b.text + "\n" + "\n".join(lines) + f"\nbomb_here: *a{levels - 1}\n").encode()
        expect = (FILE, "a0", "bomb_here")
    else:
        text = b.text + "\n" + "\n".join("x" + ln for ln in lines) + "\n"
        text += f"allocator: {{name: equal-share, params: {{bomb: *a{levels - 1}}}}}\n"
        data = text.encode()
        expect = (FILE, "xa0", "allocator")
    return Mutant("alias-bomb", b.name, data, expect=expect, note=f"{levels}x{width} {where}")


HUGE = [1e308, -1e308, 1e300, 1e20, 10**20, 2**63, 2**64, -(2**63) - 1, 1e16, 1e-300, 5e-324, -1]


def huge_number(b: Base, rng: random.Random) -> Mutant:
    path = rng.choice(_leaves(b.data, _is_number))
    value = rng.choice(HUGE)
    data = _dump(_set(b.data, path, value))
    return Mutant(
        "huge-number", b.name, data, expect=_key_expect(path), note=f"{_dotted(path)}={value!r}"
    )


def nan_inf(b: Base, rng: random.Random) -> Mutant:
    path = rng.choice(_leaves(b.data, _is_number) or _leaves(b.data))
    value = rng.choice([".nan", ".inf", "-.inf", ".NaN", ".Inf"])
    token = "__NONFINITE__"
    data = _dump(_set(b.data, path, token)).replace(f"'{token}'".encode(), value.encode())
    data = data.replace(token.encode(), value.encode())
    return Mutant(
        "nan-inf", b.name, data, expect=_key_expect(path), note=f"{_dotted(path)}={value}"
    )


def edge_number(b: Base, rng: random.Random) -> Mutant:
    """Numbers near or at the schema's bounds: mostly accepted, so the run must cope."""
    path = rng.choice(_leaves(b.data, _is_number))
    v = _get(b.data, path)
    choices: list[Any] = [0, 1, 1e-6, 1e-3, 1e3, 1e5, 1e7, -1e-3]
    if v:
        choices += [v * 1e-3, v * 1e3, v * 1e6, -v]
    value = rng.choice(choices)
    if isinstance(v, int) and not isinstance(value, int) and abs(value) < 2**62:
        value = int(value)
    data = _dump(_set(b.data, path, value))
    return Mutant(
        "edge-number", b.name, data, expect=_key_expect(path), note=f"{_dotted(path)}={value!r}"
    )


def _label_paths(data: dict[str, Any]) -> list[Path_]:
    paths: list[Path_] = [("name",)]
    for i, v in enumerate(data.get("variants") or []):
        if isinstance(v, dict):
            paths.append(("variants", i, "label"))
    groups = (data.get("users") or {}).get("groups") or []
    for i, _ in enumerate(groups):
        paths.append(("users", "groups", i, "label"))
        paths.append(("users", "groups", i, "encoder"))
    if isinstance(data.get("sweep"), dict):
        paths.append(("sweep", "name"))
    paths.append(("description",))
    return paths


def long_label(b: Base, rng: random.Random) -> Mutant:
    path = rng.choice(_label_paths(b.data))
    n = rng.choice([101, 1000, 10_000, 200_000])
    value = rng.choice(["x", "é", "ab/"]) * n
    data = _dump(_set(b.data, path, value[:n]))
    return Mutant("long-label", b.name, data, expect=(FILE, *_key_expect(path)), note=f"{path} {n}")


PATH_LIKE = [
    "../escaped",
    "../../x",
    "/tmp/aigcsim-fuzz-abs",
    "a/b",
    ".",
    "..",
    "a\\b",
    "~",
    "",
    " lead",
    "trail ",
    "c:x",
    "nul\x00byte",
    "new\nline",
    "tab\there",
    ".hidden",
]


def path_label(b: Base, rng: random.Random) -> Mutant:
    candidates = [p for p in _label_paths(b.data) if p[-1] in ("name", "label")]
    path = rng.choice(candidates)
    value = rng.choice(PATH_LIKE)
    data = _dump(_set(b.data, path, value))
    return Mutant("path-label", b.name, data, expect=_key_expect(path), note=f"{path}={value!r}")


def duplicate_key(b: Base, rng: random.Random) -> Mutant:
    lines = b.text.split("\n")
    keyed = [i for i, ln in enumerate(lines) if re.match(r"^\s*[A-Za-z_][\w.-]*:", ln)]
    i = rng.choice(keyed)
    indent = len(lines[i]) - len(lines[i].lstrip())
    key = lines[i].strip().split(":")[0]
    # insert a second copy of the key right after the first one's line, same indent
    copy = " " * indent + f"{key}: 1"
    if lines[i].lstrip().startswith("- "):  # a list item: repeat its first key
        copy = " " * (indent + 2) + f"{key[2:] if key.startswith('- ') else key}: 1"
    new = lines[: i + 1] + [copy] + lines[i + 1 :]
    return Mutant(
        "duplicate-key", b.name, "\n".join(new).encode(), expect=(FILE,), note=f"line {i + 1}"
    )


def unknown_key(b: Base, rng: random.Random) -> Mutant:
    path = rng.choice(_mappings(b.data))
    node = _get(b.data, path)
    if node and rng.random() < 0.5:
        k = str(rng.choice(list(node)))
        bad = k[:-1] if len(k) > 1 else k + "x"  # a typo of an existing key
    else:
        bad = rng.choice(["nonsense_key", "radius", "seeed", "x" * 300, "tx_power_dBm"])
    if bad in node:
        bad += "_zz"
    data = _dump(_set(b.data, (*path, bad), 1))
    expect = (*_key_expect((*path, bad[:60])), FILE) if path else (bad[:60],)
    return Mutant("unknown-key", b.name, data, expect=expect, note=f"{_dotted((*path, bad))[:80]}")


WRONG = [[1, 2], {"a": 1}, "text", True, None, 3, -7, 0.5, [], {}]


def wrong_type(b: Base, rng: random.Random) -> Mutant:
    path = rng.choice([p for p, _ in _walk(b.data) if p])
    value = rng.choice(WRONG)
    data = _dump(_set(b.data, path, value))
    return Mutant(
        "wrong-type", b.name, data, expect=_key_expect(path), note=f"{_dotted(path)}={value!r}"
    )


def delete_key(b: Base, rng: random.Random) -> Mutant:
    import copy

    path = rng.choice([p for p, _ in _walk(b.data) if p and isinstance(p[-1], str)])
    data = copy.deepcopy(b.data)
    parent = _get(data, path[:-1])
    del parent[path[-1]]
    return Mutant("delete-key", b.name, _dump(data), expect=_key_expect(path), note=_dotted(path))


def truncate(b: Base, rng: random.Random) -> Mutant:
    raw = b.text.encode()
    k = rng.randrange(1, len(raw))
    return Mutant("truncate", b.name, raw[:k], expect=(), note=f"first {k} bytes")


PLUGINS = [
    ("cell", "pathloss"),
    ("cell", "fading"),
    ("link", "model"),
    ("provider", "step_time"),
    ("users", "placement"),
    ("users", "mobility"),
    ("users", "arrivals"),
    ("allocator",),
]


def bad_plugin(b: Base, rng: random.Random) -> Mutant:
    path = rng.choice(PLUGINS)
    how = rng.choice(["typo-name", "unknown-name", "bad-param", "params-not-map", "name-number"])
    value: Any
    if how == "typo-name":
        value = {"name": "proportional-fiar" if path == ("allocator",) else "rayleigh2"}
    elif how == "unknown-name":
        value = {"name": rng.choice(["nope", "policy2", "x" * 500])}
    elif how == "bad-param":
        current = {}
        try:
            current = dict(_get(b.data, path))
        except (KeyError, TypeError):
            pass
        name = current.get("name") or {"allocator": "proportional-fair"}.get(path[0], "constant")
        value = {"name": name, "params": {"no_such_param": 1}}
    elif how == "params-not-map":
        value = {"name": "equal-share", "params": [1, 2]}
    else:
        value = {"name": 42}
    data = _dump(_set(_ensure(b.data, path[:-1]), path, value))
    return Mutant("bad-plugin", b.name, data, expect=_key_expect(path), note=f"{path} {how}")


def _ensure(data: dict[str, Any], path: Path_) -> dict[str, Any]:
    import copy

    data = copy.deepcopy(data)
    node = data
    for p in path:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    return data


ENCODERS = [
    "vq-mask/prm/p=7",
    "vq-mask/prm/p=nan",
    "vq-mask/prm/p=-0.5",
    "jpeg/q=0",
    "jpeg/q=1000",
    "jpeg/q=abc",
    "raw/x",
    "nope",
    "seq-words/most-attentive/extra",
    "",
    "jpeg",
    "cross-attn/k=99/r=99",
]


def bad_encoder(b: Base, rng: random.Random) -> Mutant:
    groups = (b.data.get("users") or {}).get("groups") or [{"encoder": "raw", "fraction": 1.0}]
    i = rng.randrange(len(groups))
    data = _ensure(b.data, ("users",))
    data["users"]["groups"] = [dict(g) for g in groups]
    value = rng.choice(ENCODERS)
    data["users"]["groups"][i]["encoder"] = value
    path = ("users", "groups", i, "encoder")
    return Mutant("bad-encoder", b.name, _dump(data), expect=_key_expect(path), note=value)


def bad_table(b: Base, rng: random.Random) -> Mutant:
    source = rng.choice(
        [
            "builtin:nope",
            "no/such/file.sqlite",
            "/dev/null",
            "/",
            "/etc/hostname",
            "weird?mode=rwc#x%20.sqlite",
            "x" * 5000,
            "builtin:synthetic",
        ]
    )
    table: dict[str, Any] = {"source": source}
    if source == "builtin:synthetic":
        table["params"] = rng.choice([{"num_images": 0}, {"seed": -1}, {"bogus": 1}])
    data = _dump({**b.data, "table": table})
    return Mutant("bad-table", b.name, data, expect=("table",), note=source[:60])


SET_VALUES = [
    "a..b=1",
    "=3",
    "nokey",
    "users.groups.99.encoder=raw",
    "users.groups.x.encoder=raw",
    "cell=3",
    "cell.radius_m=[1, 2]",
    "seed=-1",
    "seed=18446744073709551616",
    "duration_s=1e400",
    "duration_s=.nan",
    "interval_s=1e-9",
    "users.count=1000000000",
    "description=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "description={a: &a [1,1,1,1,1,1,1,1,1], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], "
    "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]}",
    "name=../../x",
    "allocator.name=nope",
    "cell.fading.params.k=1",
    "variants.0.label=../x",
]


def bad_override(b: Base, rng: random.Random) -> Mutant:
    text = rng.choice(SET_VALUES)
    if rng.random() < 0.3:  # reach below a value: a scalar, or an item of a list of scalars
        leaf = rng.choice(_leaves(b.data))
        text = f"{_dotted(leaf)}.{rng.choice(['x', '0', '0.x'])}=1"
    key = text.partition("=")[0]
    expect = (key.split(".")[0],) if key and "." in key else ((key,) if key else ("--set",))
    if text in ("=3", "nokey"):
        expect = ("--set",)
    return Mutant("bad-override", b.name, b.text.encode(), (text,), expect=expect, note=text[:60])


def bad_variant(b: Base, rng: random.Random) -> Mutant:
    key, value = rng.choice(
        [
            ("cell.tx_power_dbm", float("nan")),
            ("users.groups.0.encoder", "nope"),
            ("allocator.name", "proportional-fiar"),
            ("cell.radius_m", -5),
            ("nokey", 1),
            ("users.count", 0),
            ("users.groups.7.encoder", "raw"),
            ("table.source", "missing.sqlite"),
        ]
    )
    variants = [{"label": "ok", "set": {}}, {"label": "bad", "set": {key: value}}]
    data = _dump({**b.data, "variants": variants})
    if b.data.get("sweep") is not None:  # a sweep crosses its axes with the variants
        return Mutant("bad-variant", b.name, data, expect=("variants", "sweep", key), note=key)
    return Mutant("bad-variant", b.name, data, expect=("variants.1",), note=f"{key}={value!r}")


CLASSES: dict[str, Callable[[Base, random.Random], Mutant]] = {
    "non-utf8": non_utf8,
    "deep-nesting": deep_nesting,
    "binary": binary,
    "alias-bomb": alias_bomb,
    "huge-number": huge_number,
    "nan-inf": nan_inf,
    "edge-number": edge_number,
    "long-label": long_label,
    "path-label": path_label,
    "duplicate-key": duplicate_key,
    "unknown-key": unknown_key,
    "wrong-type": wrong_type,
    "delete-key": delete_key,
    "truncate": truncate,
    "bad-plugin": bad_plugin,
    "bad-encoder": bad_encoder,
    "bad-table": bad_table,
    "bad-override": bad_override,
    "bad-variant": bad_variant,
}
"""Mutation class name -> generator (19 classes)."""


def mutate(kind: str, base: Base, seed: int) -> Mutant:
    """The mutant of class ``kind`` of ``base`` for ``seed`` (deterministic)."""
    return CLASSES[kind](base, random.Random(seed))


def names_expected(message: str, mutant: Mutant, file: Path) -> bool:
    """Does a rejection message name what :attr:`Mutant.expect` asks for?"""
    if not mutant.expect:
        return True
    flat = re.sub(r"\s+", "", message)
    for want in mutant.expect:
        target = str(file) if want == FILE else want
        parts = target.split(".") if want != FILE else [target]
        # the key itself or one of its parents (an error of the whole section)
        for n in range(len(parts), 0, -1):
            if re.sub(r"\s+", "", ".".join(parts[:n])) in flat:
                return True
    return False
