"""The `mtt-params` directive: a params section's table (name, type, default, description) from its typed model.

```{mtt-params} train
```
renders every key of params.yaml's `train` section as the pydantic model behind it declares it (nested sections
as dotted names), so a page can never describe a param the code does not have.
"""

from __future__ import annotations

import json
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def _type(annotation: Any) -> str:
    """A param's type as a reader writes it: `int`, `list[str]`, `'a' | 'b'`."""
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    text = text or str(annotation)
    return text.replace("typing.", "").replace("Literal", "one of ").replace("NoneType", "None")


def _default(field: Any) -> str:
    if field.default is PydanticUndefined:
        return "(required)"
    value = field.default.model_dump() if isinstance(field.default, BaseModel) else field.default
    return json.dumps(value, default=str) if not isinstance(value, BaseModel) else ""


def _constraints(field: Any) -> str:
    """Ranges the model checks (gt/ge/lt/le, lengths), as `>= 0`, `< 1`."""
    marks = []
    for item in field.metadata:
        for name, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >="),
                             ("max_length", "length <=")):
            value = getattr(item, name, None)
            if value is not None:
                marks.append(f"{symbol} {value}")
    return ", ".join(marks)


def rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    """(name, type and range, default, description) of every key, nested sections flattened."""
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += rows(annotation, f"{key}.")
            continue
        kind = " ".join(filter(None, [_type(annotation), _constraints(field)]))
        out.append((key, kind, _default(field), field.description or ""))
    return out


def table(data: list[tuple[str, str, str, str]]) -> nodes.table:
    """A docutils table of the rows."""
    header = ("param", "type", "default", "what it is")
    group = nodes.tgroup(cols=4)
    for width in (22, 18, 14, 46):
        group += nodes.colspec(colwidth=width)
    head, body = nodes.thead(), nodes.tbody()
    for cells, part in [(header, head), *[(row, body) for row in data]]:
        line = nodes.row()
        for index, text in enumerate(cells):
            paragraph = nodes.paragraph()
            paragraph += nodes.literal(text=text) if index < 3 and part is body and text else nodes.Text(text)
            entry = nodes.entry()
            entry += paragraph
            line += entry
        part += line
    group += head
    group += body
    return nodes.table("", group)


class ParamsDirective(Directive):
    """```{mtt-params} <section>```: the section's table, from `mtt.tools.params.Params`."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        from mtt.tools.params import SECTIONS, Params

        section = self.arguments[0]
        if section not in SECTIONS:
            raise self.error(f"mtt-params: no section {section!r} in params.yaml (there: {', '.join(SECTIONS)})")
        annotation = Params.model_fields[SECTIONS[section]].annotation
        model = next(a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)
                     and issubclass(a, BaseModel))
        return [table(rows(model, f"{section}."))]


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("mtt-params", ParamsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
