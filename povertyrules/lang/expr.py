"""Rule expressions: parsed with `ast` into a small typed tree, never evaluated by Python.

The grammar is an allow-list: literals (numbers, quoted text, true/false), names (input columns, parameters,
definitions, other rules), arithmetic (+ - * /, unary -), comparisons (< <= > >= == !=, chains),
``and``/``or``/``not``, membership in a literal list (``x in ['a', 'b']``), ``x is known`` / ``x is missing``
(and ``is not``), and the functions in ``FUNCTIONS``. Anything else is rejected with its position.

>>> names(parse("per_capita_income < poverty_line and not ex_vehicle"))
['per_capita_income', 'poverty_line', 'ex_vehicle']
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from povertyrules.errors import ExpressionError

Type = Literal["number", "bool", "text"]

#: name -> (number of arguments or None for "one or more", how the result type follows from the arguments)
FUNCTIONS: dict[str, tuple[int | None, str]] = {
    "min": (None, "number"),
    "max": (None, "number"),
    "abs": (1, "number"),
    "floor": (1, "number"),  # the largest whole number not above (e.g. the year of a YYYYMM month)
    "coalesce": (None, "same"),  # first known argument
    "last_year": (1, "same"),  # a parameter's value in force for the year before the evaluated one
}


@dataclass(frozen=True)
class Const:
    value: float | bool | str
    pos: int


@dataclass(frozen=True)
class Name:
    name: str
    pos: int


@dataclass(frozen=True)
class Neg:
    operand: Node
    pos: int


@dataclass(frozen=True)
class Arith:
    op: Literal["+", "-", "*", "/"]
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True)
class Compare:
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True)
class Logic:
    op: Literal["and", "or"]
    operands: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Not:
    operand: Node
    pos: int


@dataclass(frozen=True)
class In:
    operand: Node
    values: tuple[str | float, ...]
    negate: bool
    pos: int


@dataclass(frozen=True)
class Known:
    operand: Node
    negate: bool  # True for "is missing" / "is not known"
    pos: int


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Node, ...]
    pos: int


Node = Const | Name | Neg | Arith | Compare | Logic | Not | In | Known | Call

_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_BOOL_NAMES = {"true": True, "false": False, "True": True, "False": False}

#: Limits that keep a hostile rule file from hanging or crashing the loader (the shipped rules stay far below).
MAX_CHARS = 2_000
MAX_DEPTH = 100
MAX_NODES = 500
MAX_DIGITS = 15  # significant digits in a number literal
MAX_NUMBER = 1e12


def parse(text: str) -> Node:
    """Parse one expression into the typed tree, or raise ExpressionError naming the position."""
    source = str(text).replace("\r", " ").replace("\n", " ")  # keeps every character's offset
    if len(source) > MAX_CHARS:
        raise ExpressionError(f"expression longer than {MAX_CHARS} characters ({len(source)})", MAX_CHARS)
    depth, deepest = 0, 0
    for i, char in enumerate(source):  # brackets first: Python's own parser overflows on deep nesting
        depth += (char in "([{") - (char in ")]}")
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            raise ExpressionError(f"brackets nested deeper than {MAX_DEPTH} levels", i)
    try:
        tree = ast.parse(source.strip() and source, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}", (exc.offset or 1) - 1) from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError(f"expression nested too deeply (limit {MAX_DEPTH} levels)", 0) from None
    _check_size(tree.body)
    return _convert(tree.body)


def _check_size(root: ast.AST) -> None:
    """Depth and node count, without recursion (so a hostile tree cannot overflow the stack)."""
    stack, count = [(root, 1)], 0
    while stack:
        node, level = stack.pop()
        count += 1
        pos = getattr(node, "col_offset", 0)
        if level > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels", pos)
        if count > MAX_NODES:
            raise ExpressionError(f"expression has more than {MAX_NODES} parts", pos)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node)
                     if not isinstance(child, ast.expr_context | ast.operator | ast.cmpop | ast.boolop
                                       | ast.unaryop))


def _number(value: int | float, pos: int) -> float:
    digits = len(str(abs(value)).lstrip("0")) if isinstance(value, int) else None
    if digits is not None and digits > MAX_DIGITS:
        raise ExpressionError(f"number literal has more than {MAX_DIGITS} digits", pos)
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise ExpressionError(f"number literal out of range (at most {MAX_NUMBER:g})", pos)
    return number


def _convert(node: ast.AST) -> Node:
    pos = getattr(node, "col_offset", 0)
    match node:
        case ast.Constant(value=bool() as v):
            return Const(v, pos)
        case ast.Constant(value=int() | float() as v):
            return Const(_number(v, pos), pos)
        case ast.Constant(value=str() as v):
            return Const(v, pos)
        case ast.Name(id=name) if name in _BOOL_NAMES:
            return Const(_BOOL_NAMES[name], pos)
        case ast.Name(id=name):
            if name.startswith("_"):
                raise ExpressionError(f"names may not start with '_': {name}", pos)
            return Name(name, pos)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return Neg(_convert(operand), pos)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return Not(_convert(operand), pos)
        case ast.BinOp(op=op, left=left, right=right) if type(op) in _ARITH:
            return Arith(_ARITH[type(op)], _convert(left), _convert(right), pos)
        case ast.BoolOp(op=op, values=values):
            return Logic("and" if isinstance(op, ast.And) else "or", tuple(map(_convert, values)), pos)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            return _convert_compare(left, ops, comparators, pos)
        case ast.Call(func=ast.Name(id=fn), args=args, keywords=[]) if fn in FUNCTIONS:
            arity, _ = FUNCTIONS[fn]
            if (arity is not None and len(args) != arity) or not args:
                raise ExpressionError(f"{fn}() takes {arity or 'one or more'} argument(s)", pos)
            if fn == "last_year" and not isinstance(args[0], ast.Name):
                raise ExpressionError("last_year() takes a parameter name", pos)
            return Call(fn, tuple(map(_convert, args)), pos)
        case ast.Call(func=ast.Name(id=fn)):
            raise ExpressionError(f"unknown function {fn}(); allowed: {', '.join(sorted(FUNCTIONS))}", pos)
    raise ExpressionError(f"{type(node).__name__} is not allowed in rule expressions", pos)


def _convert_compare(left: ast.AST, ops: list[ast.cmpop], comparators: list[ast.AST], pos: int) -> Node:
    parts: list[Node] = []
    for op, right in zip(ops, comparators, strict=True):
        if isinstance(op, ast.Is | ast.IsNot):
            if len(ops) != 1 or not (isinstance(right, ast.Name) and right.id in ("known", "missing")):
                raise ExpressionError("'is' must be followed by 'known' or 'missing'", pos)
            missing = (right.id == "missing") != isinstance(op, ast.IsNot)
            return Known(_convert(left), missing, pos)
        if isinstance(op, ast.In | ast.NotIn):
            if len(ops) != 1 or not isinstance(right, ast.List | ast.Tuple):
                raise ExpressionError("'in' takes a literal list, e.g. x in ['a', 'b']", pos)
            values = []
            for element in right.elts:
                if not (isinstance(element, ast.Constant) and isinstance(element.value, str | int | float)):
                    raise ExpressionError("'in' lists may hold only literal text or numbers",
                                          getattr(element, "col_offset", pos))
                values.append(element.value if isinstance(element.value, str)
                              else _number(element.value, element.col_offset))
            return In(_convert(left), tuple(values), isinstance(op, ast.NotIn), pos)
        if type(op) not in _COMPARE:
            raise ExpressionError(f"comparison {type(op).__name__} is not allowed", pos)
        parts.append(Compare(_COMPARE[type(op)], _convert(left), _convert(right), pos))
        left = right
    return parts[0] if len(parts) == 1 else Logic("and", tuple(parts), pos)


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of a node."""
    match node:
        case Neg(operand=o) | Not(operand=o) | In(operand=o) | Known(operand=o):
            return (o,)
        case Arith(left=a, right=b) | Compare(left=a, right=b):
            return (a, b)
        case Logic(operands=ops) | Call(args=ops):
            return ops
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, depth first."""
    yield node
    for child in children(node):
        yield from walk(child)


def names(node: Node) -> list[str]:
    """The names an expression refers to, in order of first appearance (worked out once per node: nodes are
    immutable, and a rule set's nodes are asked again and again)."""
    hit = _NAMES.get(id(node))
    if hit is None or hit[0] is not node:
        if len(_NAMES) > _NAMES_KEPT:
            _NAMES.clear()
        hit = _NAMES[id(node)] = (node, tuple(dict.fromkeys(n.name for n in walk(node) if isinstance(n, Name))))
    return list(hit[1])


_NAMES: dict[int, tuple[Node, tuple[str, ...]]] = {}
_NAMES_KEPT = 100_000


def infer_type(node: Node, type_of: Callable[[Name], Type]) -> Type:
    """Check an expression's types and return its result type; `type_of` resolves names."""

    def need(child: Node, wanted: Type, what: str) -> None:
        got = infer_type(child, type_of)
        if got != wanted:
            raise ExpressionError(f"{what} needs a {wanted} value, got {got}", child.pos)

    match node:
        case Const(value=bool()):
            return "bool"
        case Const(value=str()):
            return "text"
        case Const():
            return "number"
        case Name():
            return type_of(node)
        case Neg(operand=o):
            need(o, "number", "unary -")
            return "number"
        case Arith(op=op, left=a, right=b):
            need(a, "number", f"'{op}'")
            need(b, "number", f"'{op}'")
            return "number"
        case Compare(op=op, left=a, right=b):
            left_type = infer_type(a, type_of)
            if op in ("<", "<=", ">", ">="):
                need(a, "number", f"'{op}'")
                need(b, "number", f"'{op}'")
            else:
                need(b, left_type, f"'{op}'")
            return "bool"
        case Logic(op=op, operands=ops):
            for o in ops:
                need(o, "bool", f"'{op}'")
            return "bool"
        case Not(operand=o):
            need(o, "bool", "'not'")
            return "bool"
        case In(operand=o, values=values):
            operand_type = infer_type(o, type_of)
            if any(("text" if isinstance(v, str) else "number") != operand_type for v in values):
                raise ExpressionError(f"'in' list values must all be {operand_type}", node.pos)
            return "bool"
        case Known(operand=o):
            infer_type(o, type_of)
            return "bool"
        case Call(function=fn, args=args):
            if FUNCTIONS[fn][1] == "number":
                for a in args:
                    need(a, "number", f"{fn}()")
                return "number"
            first = infer_type(args[0], type_of)
            for a in args[1:]:
                need(a, first, f"{fn}()")
            return first
    raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover - the parser builds no other node


def render(node: Node) -> str:
    """The expression back as canonical text (used for hashing and explanations)."""
    match node:
        case Const(value=bool() as v):
            return "true" if v else "false"
        case Const(value=str() as v):
            return repr(v)
        case Const(value=v):
            return f"{v:g}"
        case Name(name=n):
            return n
        case Neg(operand=o):
            return f"-{_wrap(o)}"
        case Arith(op=op, left=a, right=b) | Compare(op=op, left=a, right=b):
            return f"{_wrap(a)} {op} {_wrap(b)}"
        case Logic(op=op, operands=ops):
            return f" {op} ".join(_wrap(o) for o in ops)
        case Not(operand=o):
            return f"not {_wrap(o)}"
        case In(operand=o, values=values, negate=neg):
            return f"{_wrap(o)} {'not in' if neg else 'in'} [{', '.join(map(repr, values))}]"
        case Known(operand=o, negate=neg):
            return f"{_wrap(o)} is {'missing' if neg else 'known'}"
        case Call(function=fn, args=args):
            return f"{fn}({', '.join(map(render, args))})"
    raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover


def _wrap(node: Node) -> str:
    text = render(node)
    return text if isinstance(node, Const | Name | Call) else f"({text})"
