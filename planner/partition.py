"""Cuts of any PyTorch model and the exact head/tail split at each one.

A cut is a point of the dataflow graph where exactly one tensor flows from the part before to the part
after. The model is traced with torch.fx and shapes come from `ShapeProp`; walking the nodes in execution
order, a prefix whose only value still needed later is one tensor is a cut. Nodes that do not depend on the
input (parameters read with `get_attr`, constants) are not data and are copied to whichever side uses them.
Every cut is checked numerically: `tail(head(x))` must equal `model(x)` or it is not listed.

Models that torch.fx cannot trace fall back to the top-level children of an `nn.Sequential`. A tensor is a
cut only if its first dimension is the batch (checked by propagating a batch of one and a batch of two), so a
recurrent layer's hidden state (batch on dim 1) is never listed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from planner.errors import PartitionError
from planner.tracegate import TRACE_GATE

INPUT, OUTPUT = "input", "output"
ATOL = 1e-5


@dataclass(frozen=True)
class Cut:
    """One place to split a model: `id` is stable (the graph node's name), `shape` excludes the batch."""

    id: str
    index: int
    kind: str  # "input" (cloud-only), "inner", or "output" (edge-only)
    shape: tuple[int, ...]
    dtype: str
    float32_bytes: int
    head_params: int
    producer: str  # what made the tensor: a module class ("ReLU", "MaxPool2d") or a function ("relu", "add")
    scope: str = ""  # the innermost module the tensor was made in, e.g. "layer1.0" (for people reading tables)
    inside_block: bool = False  # made and used inside one block (a module with its own forward): not a block output
    block_output: bool = False  # what a block returns (a residual sum, a projection's output, a stage's end)
    duplicate: bool = False  # only repeats the previous cut (padding, dropout, identity, a reshape): never needed

    @property
    def trivial(self) -> bool:
        return self.kind != "inner"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cut:
        return cls(**{**d, "shape": tuple(d["shape"])})


class _Identity(nn.Module):
    def forward(self, x):
        return x


def _count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _producer(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)).__name__
    if node.op in ("call_function", "call_method"):
        return getattr(node.target, "__name__", str(node.target))
    return node.op


def _scope(node: fx.Node) -> str:
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack), "") if stack else ""


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
# ops that only repeat their input's values: padding, dropout (an identity in eval mode), identity, reshapes
_REPEATERS = {"ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "pad",
              "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "dropout", "Identity", "Flatten",
              "flatten", "view", "reshape", "contiguous", "squeeze", "unsqueeze", "clone"}


def _where(node: fx.Node) -> str:
    """The module a node runs in: a leaf module's parent for `call_module`, else the innermost module."""
    if node.op == "call_module":
        return str(node.target).rpartition(".")[0]
    return _scope(node)


def _blocks(path: str, root: nn.Module) -> set[str]:
    """The blocks (non-root modules with their own forward, not containers) enclosing a module path; looked up
    in the original model (a GraphModule turns containers into plain modules)."""
    parts = path.split(".") if path else []
    out = set()
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        try:
            module = root.get_submodule(name)
        except AttributeError:
            continue
        if not isinstance(module, _CONTAINERS):
            out.add(name)
    return out


def _block_role(v: fx.Node, root: nn.Module) -> tuple[bool, bool]:
    """(inside_block, block_output) of a cut tensor: made and used within one block, or returned by a block."""
    made_in = _blocks(_where(v), root)
    users = [u for u in v.users if u.op != "output"]
    used_in = [_blocks(_where(u), root) for u in users]
    inside = any(made_in & b for b in used_in)
    output = bool(made_in) and not inside and all(not (made_in & b) for b in used_in)
    return inside, output


def _repeats(v: fx.Node, previous: fx.Node | None, data: set[fx.Node], gm: fx.GraphModule) -> bool:
    """True when `v` only repeats the previous cut's tensor (padded, dropped out in eval, reshaped)."""
    inputs = [a for a in v.all_input_nodes if a in data]
    return _producer(v, gm) in _REPEATERS and len(inputs) == 1 and inputs[0] is previous


def _meta(node: fx.Node) -> TensorMetadata | None:
    meta = node.meta.get("tensor_meta")
    return meta if isinstance(meta, TensorMetadata) else None


class Partitioner:
    """Traces a model once; lists its cuts and splits it at any of them."""

    def __init__(self, model: nn.Module, example_input: torch.Tensor, leaf_modules: tuple[type, ...] = (),
                 verify: bool = True):
        if not isinstance(model, nn.Module):
            raise PartitionError(f"expected an nn.Module, got {type(model).__name__}")
        if not isinstance(example_input, torch.Tensor) or example_input.dim() < 1:
            raise PartitionError("example_input must be a tensor with a batch dimension, e.g. torch.zeros(1, 1, 28, 28)")
        self.model = model
        self.example = example_input
        self.gm: fx.GraphModule | None = None
        with TRACE_GATE.running():
            self.reference = _run_example(model, example_input)
        try:
            self.gm = self._trace(model, leaf_modules)
        except PartitionError:
            raise
        except Exception as exc:  # noqa: BLE001 - fx raises many kinds for untraceable code
            if not isinstance(model, nn.Sequential):
                raise PartitionError(
                    f"torch.fx cannot trace {type(model).__name__} ({type(exc).__name__}: {_first_line(exc)}). "
                    "Data-dependent control flow (an `if` or loop on tensor values) is not traceable: mark the "
                    "sub-modules that contain it as leaf modules so they stay whole (--leaf-modules "
                    "package.module:Class[,...], or leaf_modules=(MyBlock,) in Python), or express the model as an "
                    "nn.Sequential whose top-level children are the units to split between."
                ) from None
        with TRACE_GATE.running(), torch.no_grad():  # no other thread may trace while modules run (tracegate)
            self._cuts, self._split_at = self._find_cuts(verify)

    # -- tracing -------------------------------------------------------------------------------------
    @staticmethod
    def _trace(model: nn.Module, leaf_modules: tuple[type, ...]) -> fx.GraphModule:
        class _Tracer(fx.Tracer):
            def is_leaf_module(self, m, qualname):
                return isinstance(m, leaf_modules) or super().is_leaf_module(m, qualname)

        with TRACE_GATE.tracing():
            graph = _Tracer().trace(model)
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise PartitionError(
                f"{type(model).__name__}.forward takes {len(placeholders)} inputs; only single-input models can be split"
            )
        return fx.GraphModule(model, graph)

    # -- cut discovery ---------------------------------------------------------------------------------
    def _find_cuts(self, verify: bool):
        if self.gm is None:
            return self._sequential_cuts(verify)
        gm = self.gm
        with torch.no_grad():
            ShapeProp(gm).propagate(self.example)
        nodes = list(gm.graph.nodes)
        data = self._data_nodes(nodes)
        batched = self._batched_nodes()
        position = {n: i for i, n in enumerate(nodes)}
        last_use = {n: max((position[u] for u in n.users), default=position[n]) for n in nodes}
        output_node = nodes[-1]
        found: list[fx.Node] = []
        live: set[fx.Node] = set()
        for i, node in enumerate(nodes[:-1]):
            if node in data:
                live.add(node)
            live = {n for n in live if last_use[n] > i}
            if len(live) == 1:
                (v,) = live
                if (_meta(v) is not None and v in batched and v is not output_node.args[0]
                        and (not found or found[-1] is not v)):
                    found.append(v)
        cuts, split_at = [self._trivial(INPUT)], {INPUT: None}
        values = self._node_values() if verify else {}
        previous = next((n for n in nodes if n.op == "placeholder"), None)
        for v in found:
            if v.op == "placeholder":
                continue
            if verify and not self._exact(self._graph_split(v, nodes, data, head=False)[1], values[v]):
                continue
            meta = _meta(v)
            inside, output = _block_role(v, self.model)
            cut = self._make_cut(v.name, len(cuts), meta.shape, meta.dtype, self._head_params(v, nodes),
                                 _producer(v, gm), _scope(v))
            cuts.append(replace(cut, inside_block=inside, block_output=output,
                                duplicate=_repeats(v, previous, data, gm)))
            split_at[v.name] = v
            previous = v
        cuts.append(self._trivial(OUTPUT, len(cuts)))
        split_at[OUTPUT] = None
        return cuts, split_at

    @staticmethod
    def _data_nodes(nodes: list[fx.Node]) -> set[fx.Node]:
        """Nodes whose value depends on the model input (the rest are parameters and constants)."""
        data: set[fx.Node] = set()
        for n in nodes:
            if n.op == "placeholder" or any(a in data for a in n.all_input_nodes):
                data.add(n)
        return data

    def _node_values(self, example: torch.Tensor | None = None) -> dict[fx.Node, Any]:
        values: dict[fx.Node, Any] = {}

        class _Recorder(fx.Interpreter):
            def run_node(self, n):
                values[n] = result = super().run_node(n)
                return result

        with torch.no_grad():
            _Recorder(self.gm).run(self.example if example is None else example)
        return values

    def _batched_nodes(self) -> set[fx.Node]:
        """Tensor nodes whose dim 0 is the batch: size 1 for a batch of one and 2 for a batch of two, the other
        dimensions alike. A model that cannot run a batch of two keeps the tensors with dim 0 of size 1."""
        one = {n: v.shape for n, v in self._node_values(self.example[:1]).items() if isinstance(v, torch.Tensor)}
        try:
            two = {n: v.shape for n, v in self._node_values(torch.cat([self.example[:1]] * 2)).items()
                   if isinstance(v, torch.Tensor)}
        except Exception:  # noqa: BLE001 - a model written for batch 1 only
            return {n for n, s in one.items() if len(s) and s[0] == 1}
        return {n for n, s in one.items() if len(s) and s[0] == 1 and n in two and tuple(two[n]) == (2, *s[1:])}

    def _exact(self, tail: nn.Module, feature: torch.Tensor) -> bool:
        with torch.no_grad():
            try:
                out = tail(feature.clone())
            except Exception:  # noqa: BLE001 - a tail that cannot run is simply not a cut
                return False
        return _allclose(out, self.reference)

    def _head_params(self, v: fx.Node, nodes: list[fx.Node]) -> int:
        """Parameters read by the nodes up to v, without building the head module."""
        seen: dict[int, int] = {}
        for n in nodes[: nodes.index(v) + 1]:
            if n.op == "call_module":
                params = self.gm.get_submodule(n.target).parameters()
            elif n.op == "get_attr":
                attr = self.gm
                for part in str(n.target).split("."):
                    attr = getattr(attr, part)
                params = [attr] if isinstance(attr, nn.Parameter) else []
            else:
                continue
            seen.update({id(p): p.numel() for p in params})
        return sum(seen.values())

    def _graph_split(self, v: fx.Node, nodes: list[fx.Node], data: set[fx.Node], head: bool = True):
        """Head graph: everything up to v, returning v. Tail graph: v as input, everything after it."""
        cut_pos = nodes.index(v)
        head_graph, tail_graph = fx.Graph(), fx.Graph()
        if head:
            env_h: dict[fx.Node, fx.Node] = {}
            for n in nodes[: cut_pos + 1]:
                env_h[n] = head_graph.node_copy(n, lambda a: env_h[a])
            head_graph.output(env_h[v])
        env_t: dict[fx.Node, fx.Node] = {v: tail_graph.placeholder("feature")}
        useful = _reaching_output(nodes)
        needed = self._tail_needs([n for n in nodes[cut_pos + 1:] if n in useful], data)
        for n in nodes:
            if n in needed and n not in env_t:
                env_t[n] = tail_graph.node_copy(n, lambda a: env_t[a])
        return (_module(self.gm, head_graph) if head else None), _module(self.gm, tail_graph)

    @staticmethod
    def _tail_needs(after: list[fx.Node], data: set[fx.Node]) -> set[fx.Node]:
        """The nodes after the cut plus the input-independent nodes (parameters, constants) they read."""
        needed = set(after)
        stack = list(after)
        while stack:
            for a in stack.pop().all_input_nodes:
                if a not in needed and a not in data:
                    needed.add(a)
                    stack.append(a)
        return needed

    def _sequential_cuts(self, verify: bool):
        model: nn.Sequential = self.model  # type: ignore[assignment]
        cuts, split_at = [self._trivial(INPUT)], {INPUT: None}
        x = self.example
        names = [name for name, _ in model.named_children()]
        with torch.no_grad():
            for k, (name, child) in enumerate(model.named_children()):
                x = child(x)
                if k == len(names) - 1 or not isinstance(x, torch.Tensor):
                    continue
                head = model[: k + 1]
                if verify and not self._exact(model[k + 1:], x):
                    continue
                cuts.append(self._make_cut(name, len(cuts), x.shape, x.dtype, _count_params(head),
                                           type(child).__name__, name))
                split_at[name] = k
        cuts.append(self._trivial(OUTPUT, len(cuts)))
        split_at[OUTPUT] = None
        return cuts, split_at

    def _make_cut(self, cut_id, index, shape, dtype, head_params, producer, scope="") -> Cut:
        per_sample = tuple(int(s) for s in shape[1:])
        return Cut(cut_id, index, INPUT if cut_id == INPUT else OUTPUT if cut_id == OUTPUT else "inner",
                   per_sample, str(dtype).replace("torch.", ""), 4 * math.prod(per_sample), head_params, producer,
                   scope)

    def _trivial(self, kind: str, index: int = 0) -> Cut:
        if kind == INPUT:
            return self._make_cut(INPUT, 0, self.example.shape, self.example.dtype, 0, "input")
        out = self.reference
        shape = out.shape if isinstance(out, torch.Tensor) else (1,)
        dtype = out.dtype if isinstance(out, torch.Tensor) else "object"
        return self._make_cut(OUTPUT, index, shape, dtype, _count_params(self.model), "output")

    # -- public ---------------------------------------------------------------------------------------
    @property
    def cuts(self) -> list[Cut]:
        return list(self._cuts)

    def cut(self, cut: Cut | str) -> Cut:
        cut_id = cut.id if isinstance(cut, Cut) else cut
        for c in self._cuts:
            if c.id == cut_id:
                return c
        known = ", ".join(c.id for c in self._cuts)
        raise PartitionError(f"{cut_id!r} is not a valid cut of {type(self.model).__name__}; valid cuts: {known}")

    def split(self, cut: Cut | str) -> tuple[nn.Module, nn.Module]:
        """(head, tail) with tail(head(x)) == model(x); both share the model's parameters."""
        c = self.cut(cut)
        if c.id == INPUT:
            return _Identity(), self.model
        if c.id == OUTPUT:
            return self.model, _Identity()
        where = self._split_at[c.id]
        if self.gm is None:
            return self.model[: where + 1], self.model[where + 1:]
        with TRACE_GATE.running(), torch.no_grad():
            nodes = list(self.gm.graph.nodes)
            head, tail = self._graph_split(where, nodes, self._data_nodes(nodes))
            if not self._exact(tail, head(self.example)):
                raise PartitionError(f"cut {c.id!r} does not reproduce the model's output exactly; it is not a valid cut")
        return head, tail


def _reaching_output(nodes: list[fx.Node]) -> set[fx.Node]:
    """The nodes the output depends on: a tail must not copy dead values (e.g. the unused `h` of
    `out, h = self.gru(x)`), whose inputs may lie in the head."""
    keep = {nodes[-1]}
    for n in reversed(nodes):
        if n in keep:
            keep.update(n.all_input_nodes)
    return keep


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _run_example(model: nn.Module, example: torch.Tensor) -> Any:
    """The model's output on the example input; a failure (wrong shape or dtype) is one clear line."""
    try:
        with torch.no_grad():
            return model(example)
    except Exception as exc:  # noqa: BLE001 - any failure here means the example does not fit the model
        shape = "x".join(map(str, example.shape[1:]))
        raise PartitionError(
            f"{type(model).__name__} cannot run an input of shape {shape} ({str(example.dtype).replace('torch.', '')}"
            f", batch {example.shape[0]}): {type(exc).__name__}: {_first_line(exc)}; check --input-shape / "
            "--input-dtype") from None


def _module(root: fx.GraphModule, graph: fx.Graph) -> fx.GraphModule:
    gm = fx.GraphModule(root, graph)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _allclose(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.allclose(a, b, atol=ATOL, rtol=1e-5)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_allclose(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_allclose(a[k], b[k]) for k in a)
    return a == b


def cuts(model: nn.Module, example_input: torch.Tensor, leaf_modules: tuple[type, ...] = (),
         verify: bool = True) -> list[Cut]:
    """Every valid cut of `model` in execution order, with the trivial `input` and `output` cuts at the ends."""
    return Partitioner(model, example_input, leaf_modules, verify).cuts


def split(model: nn.Module, cut: Cut | str, example_input: torch.Tensor,
          leaf_modules: tuple[type, ...] = ()) -> tuple[nn.Module, nn.Module]:
    """Split `model` at `cut` (a Cut or its id) into (head, tail) with tail(head(x)) == model(x)."""
    return Partitioner(model, example_input, leaf_modules, verify=False).split(cut)
