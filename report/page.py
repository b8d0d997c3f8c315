"""The report page: one self-contained HTML file (figures and pictures embedded as data URIs, no script, no
network), rendered with Jinja2 from the same data the report's JSON holds, and written atomically beside it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from ssseg.errors import ReportError
from ssseg.io import atomic_write_text


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def png(data: bytes) -> str:
    return data_uri(data, "image/png")


def jpeg(data: bytes) -> str:
    return data_uri(data, "image/jpeg")


TEMPLATES = Path(__file__).parent / "templates"  # base.html, macros.html, style.css and one page per report


def pct(v: float | None) -> str:
    """A share as the pages print it."""
    return "-" if v is None else f"{100 * v:.1f}%"


def render(name: str, **context) -> str:
    """Template ``name`` (it extends base.html's {% block body %} and may use macros.html)."""
    try:
        import jinja2
    except ImportError:
        raise ReportError("writing a report needs Jinja2, which is not installed",
                          fix="pip install 'ssseg[label]' (or [train])") from None
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(name).render(style=(TEMPLATES / "style.css").read_text(), pct=pct, **context)


def write(html_path: Path, html: str, data: dict) -> tuple[Path, Path]:
    """report.html and its JSON (report.json beside it)."""
    json_path = html_path.with_suffix(".json")
    atomic_write_text(json_path, json.dumps(data, separators=(",", ":")) + "\n")  # compact: C encoder, 10x faster
    atomic_write_text(html_path, html)
    return html_path, json_path
