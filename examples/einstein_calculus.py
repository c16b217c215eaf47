# %% [markdown]
# # Einstein calculus: the product table, the three modes, the compressed Hessian
#
# The chapter of Nano-AutoGrad's course that goes past scalar autograd, redone with eincalc
# (the method of Laue, Mitterreiter and Giesen that eincalc implements):
#
# 1. every matrix and vector product is one *generic product* `C = A *(s1,s2,s3) B`, that is
#    `C[s3] = Σ A[s1] B[s2]` summed over the indices not in `s3` — the table below is printed
#    by eincalc and checked against NumPy;
# 2. derivatives by forward, reverse and cross-country accumulation, shown rule by rule on
#    one example and checked on several: all three give the same derivative, equal to
#    central differences;
# 3. the Hessian of a matrix factorisation is `δ ⊗ 2VᵀV`: a Newton step with the compressed
#    form against the dense one, as the problem grows (the dense solve extrapolated where it
#    cannot run).
#
# Set `EINCALC_QUICK=1` for a short run (the tests do). Run as a script, this saves its
# figures next to itself.

# %%
import os
import time
from functools import partial

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import eincalc as ec
from eincalc import algebra
from eincalc.diff.common import depends_on
from eincalc.diff.cross_country import LinearisedGraph, get_elimination_order
from eincalc.diff.forward import tangent
from eincalc.diff.reverse import cotangent
from eincalc.printing import node_line
from eincalc.testing import check_close, numeric_jacobian

QUICK = os.environ.get("EINCALC_QUICK") == "1"
try:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS thread: steadier timings on a shared machine
except ImportError:
    pass


def save(fig, name):
    """Save a figure next to this script when it runs as one (a notebook shows it inline instead)."""
    if "inline" not in matplotlib.get_backend():
        folder = os.environ.get("EINCALC_FIGURES", os.path.dirname(os.path.abspath(__file__)))
        fig.savefig(os.path.join(folder, name), dpi=80, bbox_inches="tight")


def show(expr):
    """LaTeX in a notebook, text in a script."""
    try:
        from IPython import get_ipython
        from IPython.display import Math, display

        if get_ipython() is not None:
            return display(Math(ec.latex(expr)))
    except ImportError:
        pass
    print(" ", ec.latex(expr))


# %% [markdown]
# ## 1. The product table
#
# Each operation is built with eincalc's NumPy-like API; the right column is the node
# eincalc stores, printed in `*(s1,s2,s3)` form (indices renamed canonically, output
# first: `a, b, …`; an n-ary product prints as `*(s1,…,sn->s0)`). The check evaluates
# that printed spec with `numpy.einsum` and compares it with NumPy's own operation.

# %%
x, y = ec.vector("x", "n"), ec.vector("y", "n")
A, B = ec.matrix("A", "n n"), ec.matrix("B", "n n")
c = ec.scalar("c")
rng = np.random.default_rng(0)
v = dict(x=rng.normal(size=4), y=rng.normal(size=4), A=rng.normal(size=(4, 4)), B=rng.normal(size=(4, 4)), c=1.7)
TABLE = [  # operation, matrix notation, eincalc expression, NumPy's value
    ("inner product", "xᵀy", x @ y, v["x"] @ v["y"]),
    ("outer product", "x yᵀ", ec.outer(x, y), np.outer(v["x"], v["y"])),
    ("matrix · vector", "A x", A @ x, v["A"] @ v["x"]),
    ("vector · matrix", "xᵀA", x @ A, v["x"] @ v["A"]),
    ("matrix product", "A B", A @ B, v["A"] @ v["B"]),
    ("Hadamard product", "A ∘ B", A * B, v["A"] * v["B"]),
    ("scalar multiple", "c A", c * A, v["c"] * v["A"]),
    ("transpose", "Aᵀ", A.T, v["A"].T),
    ("trace", "tr A", ec.trace(A), np.trace(v["A"])),
    ("diagonal", "diag A", ec.diag(A), np.diag(v["A"])),
    ("sum of entries", "Σ A", ec.sum(A), v["A"].sum()),
    ("quadratic form", "xᵀA x", x @ A @ x, v["x"] @ v["A"] @ v["x"]),
    ("congruence", "A B Aᵀ", A @ B @ A.T, v["A"] @ v["B"] @ v["A"].T),
]


def product_form(node):
    """The node as eincalc prints it, with its operands' own names."""
    return node_line(node, [str(op) for op in node.children])


def einsum_value(node, arrays):
    """Evaluate the stored product from its index strings alone, with numpy.einsum."""
    spec = ",".join("".join(s) for s in node.in_idx) + "->" + "".join(node.out_idx)
    operands = [ec.evaluate(op, **{k: arrays[k] for k in ec.signature(op).names}) for op in node.operands]
    return node.coef * np.einsum(spec, *operands)


print(f"{'operation':<17} {'matrix notation':<16} {'eincalc':<34}")
for name, notation, expr, expected in TABLE:
    arrays = {k: v[k] for k in ec.signature(expr).names}
    check_close(einsum_value(expr, arrays), expected, rtol=1e-13, atol=1e-13, what=name)
    print(f"{name:<17} {notation:<16} {product_form(expr):<34}")
assert product_form(A @ x) == "x *(b,ab,a) A"  # Cᵢ = Σⱼ Aᵢⱼ xⱼ
assert product_form(ec.trace(A)) == "*(aa->)(A)"

# %% [markdown]
# ## 2. The rules, one node at a time
#
# Logistic regression, $f(w) = \sum_i \log(1 + e^{-y_i (Xw)_i})$. Its DAG, each node in
# `*(s1,s2,s3)` form — the three factors of $-y \circ (Xw)$ are one ternary product:

# %%
f = ec.parse("sum(log(1 + exp(-y * (X @ w))))", X="m n", w="n", y="m")
nodes = ec.topo_order(f)
w = next(n for n in nodes if isinstance(n, ec.Var) and n.name == "w")
names = {id(n): n.name if isinstance(n, ec.Var) else f"v{k}" for k, n in enumerate(nodes)}
dependent = depends_on(f, w)
for n in nodes:
    print(f"{names[id(n)]:>3} = {node_line(n, [names[id(ch)] for ch in n.children]):<28} dims ({', '.join(n.dims)})")

# %% [markdown]
# **Reverse mode** seeds $\bar f = 1$ and pulls adjoints back: for a product
# `C = A *(s1,s2,s3) B` the adjoint of `A` gains `C̄ *(s4s3, s2, s4s1) B` (here `s4 = ∅`:
# the output is a scalar); an entry-wise `C = g(A)` passes `C̄ ∘ g'(A)`; a sum passes `C̄`
# to each term. `eincalc.diff.reverse.cotangent` is that rule for one node.

# %%
adjoint = {id(f): algebra.delta(f.dims)}
for n in reversed(nodes):
    if id(n) not in adjoint or isinstance(n, ec.Var):
        continue
    print(f"  adjoint of {names[id(n)]:>3}: {ec.simplify(adjoint[id(n)])}")
    for k, contribution in cotangent(n, adjoint[id(n)], ()):
        child = n.children[k]
        if id(child) in dependent:  # a variable used twice would add up here
            previous = adjoint.get(id(child))
            adjoint[id(child)] = contribution if previous is None else algebra.add([previous, contribution])
reverse_gradient = ec.simplify(adjoint[id(w)])
print(f"  adjoint of   w: {reverse_gradient}")

# %% [markdown]
# **Forward mode** seeds $\dot w = \delta$ (all directions at once, as extra trailing
# indices) and pushes tangents forward: a product `A *(s1,s2,s3) B` has tangent
# `Ȧ *(s1t, s2, s3t) B + A *(s1, s2t, s3t) Ḃ`. The tangents are Jacobians $\partial v/\partial w$.

# %%
tangents = {id(w): algebra.delta(w.dims)}
for n in nodes:
    if id(n) in dependent and n is not w:
        tangents[id(n)] = tangent(n, [tangents.get(id(ch)) for ch in n.children], w.ndim)
        print(f"  tangent of {names[id(n)]:>3}: {ec.simplify(tangents[id(n)])}")
forward_gradient = ec.simplify(tangents[id(f)])

# %% [markdown]
# **Cross-country mode** labels each edge with its local partial and eliminates the
# intermediate vertices in any order: eliminating `v` joins each predecessor `u` to each
# successor `t` by `∂t/∂v · ∂v/∂u`. The element-wise nodes have diagonal partials
# (`eye(m) * …`); eincalc's order (cheapest product first) eliminates them before the
# matrix `∂v3/∂w`, so two diagonals meet as vectors, never as m×m matrices — the
# heuristic that saves about a third on Hessians.

# %%
graph = LinearisedGraph(f, w)
for (head, tail), local in graph.edges.items():
    print(f"  ∂{names[head]}/∂{names[tail]} = {ec.simplify(local)}")
pick = get_elimination_order("min_cost")(graph)
eliminated = []
while (vertex := pick()) is not None:
    eliminated.append(names[vertex])
    graph.eliminate(vertex)
cross_country_gradient = ec.simplify(graph.edges[graph.sink, graph.source])
print("  elimination order:", ", ".join(eliminated))
assert eliminated[-1] == "v3"  # the matrix partial is multiplied last

# %% [markdown]
# The three sweeps, their simplified results, and `ec.grad` (which also applies the stable
# rewrite σ(z)e^{-z} = σ(−z)), against central differences:

# %%
X_, y_, w_ = rng.normal(size=(30, 5)), np.sign(rng.normal(size=30)), rng.normal(size=5)
loss = ec.compile(f)
differences = numeric_jacobian(lambda point: loss(X_, point, y_), w_)
for mode, gradient in [("reverse", reverse_gradient), ("forward", forward_gradient),
                       ("cross-country", cross_country_gradient), ("ec.grad", ec.grad(f, "w"))]:  # fmt: skip
    value = ec.evaluate(gradient, X=X_, w=w_, y=y_)
    check_close(value, differences, rtol=1e-7, atol=1e-8, what=mode)
    print(f"{mode:>14}: {gradient}")
    show(gradient)

# %% [markdown]
# ## 3. The same derivative from all three modes, on the chapter's examples
#
# Gradients, Hessians and Jacobians of vector functions. eincalc flattens products into
# n-ary einsums and renames unit tensors away, so after simplification the modes often
# reach the same expression; its contraction order is then chosen with the real sizes
# (the cross-country idea inside one product). Checked: the three compiled derivatives
# agree to rounding, and agree with central differences of the function (Hessians: of its
# gradient).

# %%
EXAMPLES = {  # name: text, dims, wrt, orders
    "quadratic form xᵀAx": ("x @ A @ x", dict(x="n", A="n n"), "x", (1, 2)),
    "logistic regression": ("sum(log(1 + exp(-y * (X @ w))))", dict(X="m n", w="n", y="m"), "w", (1, 2)),
    "matrix factorisation": ("sum((T - U @ V.T) ** 2)", dict(T="m n", U="m k", V="n k"), "U", (1, 2)),
    "softmax layer": ("softmax(W @ x)", dict(W="k n", x="n"), "x", (1,)),
    "two tanh layers": ("tanh(W2 @ tanh(W1 @ x))", dict(W1="h n", W2="k h", x="n"), "x", (1,)),
}
SIZES = dict(m=7, n=5, k=3, h=4)
MODES = ("forward", "reverse", "cross_country")


def along(fn, arrays, name, value):
    """``fn`` of ``arrays`` with the one named ``name`` replaced by ``value``."""
    return fn(**{**arrays, name: value})


rows = []
for name, (text, dims, wrt, orders) in EXAMPLES.items():
    fn = ec.parse(text, **dims)
    arrays = {var: rng.normal(size=tuple(SIZES[d] for d in spec.split())) / 2 for var, spec in dims.items()}
    if "y" in arrays:
        arrays["y"] = np.sign(arrays["y"])  # labels ±1
    for order in orders:
        lower = ec.compile(ec.derivative(fn, wrt, order=order - 1), dense=True)
        differences = numeric_jacobian(partial(along, lower, arrays, wrt), arrays[wrt])
        results = {}
        for mode in MODES:
            d = ec.derivative(fn, wrt, order=order, mode=mode)
            results[mode] = ec.compile(d, dense=True)(**arrays)
            check_close(results[mode], differences, rtol=1e-6, atol=1e-7, what=f"{name}, order {order}, {mode}")
        spread = max(np.abs(results[m] - results["reverse"]).max() for m in MODES)
        error = np.abs(results["reverse"] - differences).max()
        rows.append((name, order, spread, error, str(ec.derivative(fn, wrt, order=order))))
        assert spread < 1e-12
print(f"{'example':<22} {'order':>5} {'modes differ by':>15} {'vs differences':>14}  derivative")
for name, order, spread, error, text in rows:
    print(f"{name:<22} {order:>5} {spread:>15.1e} {error:>14.1e}  {text}")

# %% [markdown]
# ## 4. The compressed Hessian of a matrix factorisation
#
# For $f(U) = \|T - UV^\top\|^2$ with $U$ of $m \times k$, the Hessian is
# $H_{iajb} = 2\,\delta_{ij}(V^\top V)_{ab}$: an $mk \times mk$ tensor whose information is the
# $k \times k$ core. eincalc derives it in that form:

# %%
mf = ec.parse("sum((T - U @ V.T) ** 2)", T="m n", U="m k", V="n k")
H = ec.hessian(mf, "U")
print(H)
print(ec.compress(H))
show(H)

# %% [markdown]
# A Newton step in $U$ solves $H\Delta = \nabla f$. With the structure that is one
# $k \times k$ solve (`StructuredTensor.solve`), $O(mnk + k^3)$ with the gradient; densely
# it is an $mk \times mk$ solve, $O((mk)^3)$ time and $O((mk)^2)$ memory. Both are timed
# while the dense one takes a few seconds at most; beyond, its time is extrapolated as
# $c\,(mk)^3$ from the largest measured size.

# %%
K, N = 10, 40
newton = ec.compile([ec.grad(mf, "U"), H])
newton_dense = ec.compile([ec.grad(mf, "U"), H], dense=True)


def best_time(run, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
    return min(times), result


def compressed_step(T, U, V):
    g, h = newton(T, U, V)
    return h.solve(g)


def dense_step(T, U, V):
    g, h = newton_dense(T, U, V)
    return np.linalg.solve(h.reshape(g.size, g.size), g.ravel()).reshape(g.shape)


ms = [10, 30, 100, 300, 1000, 10_000, 100_000] if not QUICK else [10, 30, 100, 1000]
dense_limit = 100 if QUICK else 300
measured = {}
for m in ms:
    T, U, V = rng.normal(size=(m, N)), rng.normal(size=(m, K)), rng.normal(size=(N, K))
    seconds, step = best_time(partial(compressed_step, T, U, V))
    measured[m] = [seconds, None]
    if m <= dense_limit:
        newton_dense(T, U, V)  # code for this size signature is generated on its first call: not timed
        dense_seconds, dense = best_time(partial(dense_step, T, U, V), repeat=1 if m >= 300 else 3)
        check_close(step, dense, rtol=1e-8, atol=1e-10, what=f"Newton step, m = {m}")
        measured[m][1] = dense_seconds
largest = max(m for m in ms if measured[m][1] is not None)
scale = measured[largest][1] / (largest * K) ** 3
print(f"{'m':>7} {'mk':>8} {'compressed':>11} {'dense':>11} {'dense memory':>13}")
for m in ms:
    seconds, dense_seconds = measured[m]
    dense_text = f"{dense_seconds:10.2e}s" if dense_seconds is not None else f"~{scale * (m * K) ** 3:9.1e}s"
    print(f"{m:>7} {m * K:>8} {seconds:10.2e}s {dense_text:>11} {8 * (m * K) ** 2 / 2**30:>11.3g} GiB")
assert measured[largest][0] < measured[largest][1]  # already cheaper where both run

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(ms, [measured[m][0] for m in ms], "o-", label="compressed: k×k solve")
dense_ms = [m for m in ms if measured[m][1] is not None]
ax.loglog(dense_ms, [measured[m][1] for m in dense_ms], "s-", label="dense: mk×mk solve (measured)")
beyond = [largest] + [m for m in ms if m > largest]
ax.loglog(beyond, [scale * (m * K) ** 3 for m in beyond], "s--", color="C1", alpha=0.6, label="dense, extrapolated")
ax.set_xlabel("m (rows of U)")
ax.set_ylabel("Newton step [s]")
ax.set_title(f"Hessian of ‖T − UVᵀ‖² w.r.t. U; k = {K}, n = {N}")
ax.legend(fontsize=8)
save(fig, "einstein_calculus.png")
