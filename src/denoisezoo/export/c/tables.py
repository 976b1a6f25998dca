"""C text for generated weight tables: named ``const`` arrays, struct initializers, size macros.

Floats are written with 9 significant digits, which read back as exactly the same float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CTables", "CNetwork", "c_float", "render_config", "render_weights"]

_PER_LINE = 8


def c_float(v: float) -> str:
    """A C literal that reads back as the float32 ``v``."""
    if not np.isfinite(v):
        raise ValueError(f"non-finite weight {v}")
    s = f"{float(np.float32(v)):.9g}"
    if "." not in s and "e" not in s:
        s += "."
    return s + "f"


class CTables:
    """The arrays of one generated ``dz_weights.c`` (in the order they are added) and its
    size macros (``dz_config.h``)."""

    def __init__(self, macros: dict[str, int | float | str]):
        self.macros = dict(macros)
        self.arrays: list[tuple[str, str, np.ndarray, tuple[int, ...]]] = []
        self._names: set[str] = set()

    def add(self, name: str, values: np.ndarray, ctype: str = "float") -> str:
        """Add ``static const <ctype> name[] = {...}`` (flattened) and return ``name``."""
        if name in self._names:
            raise ValueError(f"duplicate table {name}")
        shape = tuple(np.shape(values))
        v = np.asarray(values).reshape(-1)
        if v.size == 0:
            v = np.zeros(1, v.dtype)  # C forbids empty arrays; nothing reads the placeholder
        self._names.add(name)
        self.arrays.append((ctype, name, v, shape))
        return name

    @staticmethod
    def struct(**fields) -> str:
        """A designated initializer ``{ .a = ..., .b = ... }`` (values already C text or
        numbers), on one line when short, else one field per line."""
        parts = [f".{k} = {c_float(v) if isinstance(v, float) else v}" for k, v in fields.items()]
        return _braces(parts)

    @staticmethod
    def array_init(items: list[str]) -> str:
        return _braces(items)

    @property
    def n_values(self) -> int:
        return int(sum(a.size for _, _, a, _ in self.arrays))

    @property
    def n_bytes(self) -> int:
        return int(sum(a.size * 4 for _, _, a, _ in self.arrays))


def _braces(parts: list[str], width: int = 96) -> str:
    one = "{ " + ", ".join(parts) + " }"
    if len(one) <= width and "\n" not in one:
        return one
    body = ",\n".join("\n".join("    " + line for line in p.split("\n")) for p in parts)
    return "{\n" + body + "\n}"


@dataclass
class CNetwork:
    """A network as C tables: size macros, arrays and the initializer of ``struct symbol``
    (declared in ``header``)."""

    macros: dict[str, int | float | str]
    tables: CTables
    init: str
    struct: str
    symbol: str
    header: str


def _macro_value(v: int | float | str) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return c_float(v)
    return str(int(v))


def render_config(net: CNetwork, banner: str) -> str:
    lines = [f"/* {banner} */", "#ifndef DZ_CONFIG_H", "#define DZ_CONFIG_H", ""]
    lines += [f"#define {k} {_macro_value(v)}" for k, v in net.macros.items()]
    lines += ["", "#endif", ""]
    return "\n".join(lines)


def _array(ctype: str, name: str, v: np.ndarray, shape: tuple[int, ...]) -> str:
    if ctype == "float":
        vals = [c_float(x) for x in v.astype(np.float32).tolist()]
    else:
        vals = [str(int(x)) for x in v.tolist()]
    rows = [", ".join(vals[i : i + _PER_LINE]) for i in range(0, len(vals), _PER_LINE)]
    body = ",\n    ".join(rows)
    dims = "".join(f"[{d}]" for d in shape) if len(shape) > 1 else ""
    note = f"  /* {dims} */" if dims else ""
    return f"static const {ctype} {name}[{len(vals)}] = {{{note}\n    {body}\n}};\n"


def render_weights(net: CNetwork, banner: str) -> str:
    out = [f"/* {banner} */", f'#include "{net.header}"', ""]
    out += [_array(c, n, v, shape) for c, n, v, shape in net.tables.arrays]
    out += [f"const {net.struct} {net.symbol} = {net.init};", ""]
    return "\n".join(out)
