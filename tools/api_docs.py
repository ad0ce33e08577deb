"""Write docs/api.md from the docstrings of rnncore's public API.

    python tools/api_docs.py           # rewrite docs/api.md
    python tools/api_docs.py --check   # exit 1 if docs/api.md is out of date

The public API is what rnncore/__init__.py lists in ``__all__``; each name
is looked up in the module __init__.py imports it from.  The sources are
read with ``ast``, so nothing is imported or compiled.
"""

import argparse
import ast
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rnncore"
OUTPUT = ROOT / "docs" / "api.md"
SECTIONS = ("Parameters", "Attributes", "Returns", "Yields", "Raises", "Warns",
            "See Also", "Notes", "Examples")
ENTRY_SECTIONS = ("Parameters", "Attributes", "Returns", "Yields", "Raises",
                  "Warns")

HEADER = """\
# API reference

Generated from the docstrings by `python tools/api_docs.py`; edit the
docstrings, not this file. Conventions shared by every function (shapes,
dtypes, padding) are in the [user guide](guide.md); the mathematics in
[derivation.md](derivation.md).
"""


def public_names():
    """[(name, module)] in the order of rnncore.__all__."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    source = {}
    exported = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                source[alias.asname or alias.name] = node.module
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            exported = [ast.literal_eval(e) for e in node.value.elts]
    return [(name, source[name]) for name in exported if name in source]


def find(module, name):
    """The definition of `name` in `module`: (kind, signature, docstring).
    A submodule imported by name (``from rnncore import optim``) is
    described by its module docstring."""
    if module == PACKAGE.name:
        path = PACKAGE / f"{name}.py"
        if not path.exists():
            return None
        return "module", "", ast.get_docstring(ast.parse(path.read_text()))
    path = PACKAGE / (module.split(".", 1)[1].replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    doc_assigned = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            doc = ast.get_docstring(node)
            if isinstance(node, ast.FunctionDef):
                return "function", f"({ast.unparse(node.args)})", doc
            return "class", "", doc
        # Name.__doc__ = """...""" (a namedtuple's docstring)
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Attribute)
                and node.targets[0].attr == "__doc__"
                and isinstance(node.targets[0].value, ast.Name)
                and node.targets[0].value.id == name):
            doc_assigned = ast.literal_eval(node.value)
    if doc_assigned is not None:
        return "class", "", doc_assigned
    return None


def split_sections(doc):
    """(description lines, {section: lines}) of a numpydoc docstring."""
    lines = doc.splitlines()
    head, sections, current = [], {}, None
    i = 0
    while i < len(lines):
        line = lines[i]
        underline = lines[i + 1] if i + 1 < len(lines) else ""
        if (line.strip() in SECTIONS and underline.strip()
                and set(underline.strip()) == {"-"}):
            current = line.strip()
            sections[current] = []
            i += 2
            continue
        (sections[current] if current else head).append(line)
        i += 1
    return head, sections


def entries(lines):
    """Numpydoc entries: (`name : type` line, description) pairs."""
    out = []
    for line in lines:
        if not line.strip():
            continue
        if not line.startswith((" ", "\t")):
            out.append([line.strip(), []])
        elif out:
            out[-1][1].append(line.strip())
    return out


def render_entry(term, description):
    name, _, kind = term.partition(" : ")
    names = ", ".join(f"`{n.strip()}`" for n in name.split(","))
    text = f"- {names}" + (f" : {kind}" if kind else "")
    if description:
        text += " — " + " ".join(description)
    return text


def markdown(line):
    """Sphinx cross-references as Markdown links to this page's sections."""
    return re.sub(r":(?:func|class|meth):`~?(?:rnncore\.)?([\w.]+)`",
                  r"[`\1`](#\1)", line)


def render(name, kind, signature, doc):
    title = (f"`rnncore.{name}` ({kind})" if kind in ("class", "module")
             else f"`rnncore.{name}{signature}`")
    out = [f'<a id="{name}"></a>', "", f"## {title}", ""]
    head, sections = split_sections(doc or "(no docstring)")
    while head and not head[-1].strip():
        head.pop()
    out += [markdown(line) for line in head] + [""]
    for section in SECTIONS:
        if section not in sections:
            continue
        body = sections[section]
        out.append(f"**{section}**")
        out.append("")
        if section in ENTRY_SECTIONS:
            out += [markdown(render_entry(t, d)) for t, d in entries(body)]
        elif section == "Examples":
            code = [re.sub(r"^(>>> |\.\.\. )", "", line) for line in body
                    if line.strip()]
            out += ["```python", *code, "```"]
        else:
            out += [markdown(line) for line in body]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def generate():
    parts = [HEADER]
    names = public_names()
    parts.append("".join(f"- [`{n}`](#{n})\n" for n, _ in names
                         if n != "__version__"))
    for name, module in names:
        if name == "__version__":
            continue
        found = find(module, name)
        if found is None:
            sys.exit(f"api_docs: cannot find {name} in {module}")
        parts.append(render(name, *found))
    parts.append("## `rnncore.__version__`\n\nThe version string, as in "
                 "rnncore/_version.py (the only place it is written).\n")
    return "\n".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/api.md differs from the docstrings")
    args = parser.parse_args()
    text = generate()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            sys.exit("docs/api.md is out of date with the docstrings: "
                     "run python tools/api_docs.py")
        print("docs/api.md matches the docstrings")
        return
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
