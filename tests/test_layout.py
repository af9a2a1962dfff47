"""The package's layers import only downward, and no module imports itself back through others.

    config, workdir, pixels, hosts,    foundations: import nothing of the package
    machine, host_memory
    cpu_convs                          XLA:CPU's conv library measured per machine (foundations only)
    pretrained, checkpoint             frozen third-party networks (+ the CLIP tokenizer); Orbax + sha256
    data                               datasets (+ the path layer); stores captions as CLIP tokens
    models                             GigaGAN's own networks (+ the measured kernel choice's cache)
    losses                             loss terms
    generate                           restore a trained model, sample, edit, upsample
    train                              steps, state, loop (its sample grid goes through generate)
    eval                               metrics and reports
    cli, commands, tools, export, demo(_page), any __main__   command lines: may import anything

Imports inside functions count too: a lazy import is still a dependency.
"""

import ast
import os
import subprocess
import sys

import pytest

PACKAGE = "gigagan_jax"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)
FOUNDATIONS = {"config", "workdir", "pixels", "hosts", "machine", "host_memory"}
MAY_IMPORT = {
    "config": set(),
    "workdir": set(),
    "pixels": set(),
    "hosts": set(),
    "machine": set(),
    "host_memory": set(),
    "cpu_convs": FOUNDATIONS,
    "data": {"config", "pixels", "workdir", "pretrained"},
    "pretrained": {"config", "pixels", "cpu_convs"},
    "checkpoint": {"config", "hosts", "workdir"},
    # kernel_choice: a per-machine cache, one choice for all hosts
    "models": {"config", "pixels", "workdir", "hosts", "machine", "cpu_convs"},
    "losses": FOUNDATIONS | {"models", "pretrained", "cpu_convs"},
    "generate": FOUNDATIONS | {"checkpoint", "pretrained", "models", "cpu_convs"},
    "train": FOUNDATIONS | {"checkpoint", "data", "pretrained", "models", "losses", "generate", "cpu_convs"},
    "eval": FOUNDATIONS | {"checkpoint", "data", "pretrained", "models", "generate", "cpu_convs"},
}
CLI_LAYERS = {"cli", "commands", "tools", "export", "demo", "demo_page"}


def package_modules() -> dict[str, str]:
    """{dotted module name: file path} of every module in the package."""
    out = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), os.path.dirname(ROOT))[:-3]
                parts = rel.split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                out[".".join(parts)] = os.path.join(folder, name)
    return out


def imported_modules(path: str, modules: dict[str, str]) -> set[str]:
    """The package modules a file imports (the longest known prefix of each imported name)."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for name in names:
            if not name.startswith(PACKAGE + "."):
                continue
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != PACKAGE:
                found.add(name)
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    return "cli" if parts[-1] == "__main__" else parts[1]


MODULES = package_modules()
GRAPH = {m: imported_modules(p, MODULES) for m, p in MODULES.items()}


def test_every_top_level_module_has_a_layer():
    assert {layer_of(m) for m in MODULES if m != PACKAGE} <= set(MAY_IMPORT) | CLI_LAYERS


def upward_imports(module: str, deps) -> list[str]:
    """The imports of `module` that its layer may not make (its own layer is always fine)."""
    layer = layer_of(module)
    if layer in CLI_LAYERS:
        return []
    return sorted(dep for dep in deps if layer_of(dep) != layer and layer_of(dep) not in MAY_IMPORT[layer])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != PACKAGE and layer_of(m) not in CLI_LAYERS))
def test_imports_only_go_down(module):
    layer = layer_of(module)
    upward = upward_imports(module, GRAPH[module])
    assert not upward, f"{module} ({layer}) imports {upward}; {layer} may import only {sorted(MAY_IMPORT[layer])}"


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module, path):
        state[module] = 1
        for dep in sorted(GRAPH[module]):
            if dep == module or dep.startswith(module + "."):
                continue  # a package's __init__ may name its own submodules
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_a_violation(tmp_path):
    """The walk finds function-level imports and maps `from a.b import c` to the module a.b.c; a
    model importing data, or generation importing the trainer, is reported; a CLI may import anything."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from gigagan_jax.train import loop\n    import gigagan_jax.data.shapes\n")
    deps = imported_modules(str(bad), MODULES)
    assert deps == {"gigagan_jax.train.loop", "gigagan_jax.data.shapes", "gigagan_jax.train"}
    assert upward_imports("gigagan_jax.models.generator", deps) == sorted(deps)
    assert upward_imports("gigagan_jax.generate.sample", deps) == ["gigagan_jax.data.shapes",
                                                                   "gigagan_jax.train", "gigagan_jax.train.loop"]
    assert upward_imports("gigagan_jax.train.loop", deps) == []  # train's own layer, and data below it
    assert upward_imports("gigagan_jax.eval.__main__", deps) == []


def test_a_command_process_never_loads_pytorch():
    """transformers and tensorboardX each import PyTorch when it is installed (3-8 s of every
    process's start on 2 cores) though nothing here uses it through them: a command's process
    (gigagan_jax.cli's environment, CLIP loading, TensorBoard writing) stays without it."""
    code = ("import sys, gigagan_jax.cli, gigagan_jax.train.loop, gigagan_jax.eval.report\n"
            "from gigagan_jax.workdir import tensorboardx\n"
            "tensorboardx()\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    env = {k: v for k, v in os.environ.items() if k != "USE_TORCH"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(ROOT))
    assert out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]
