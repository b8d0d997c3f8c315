"""The report page: one self-contained HTML file (figures and pictures embedded as data URIs, no script, no
network), rendered with Jinja2 from the same data the report's JSON holds, and written atomically beside it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from ssseg.errors import ReportError
from ssseg.io import atomic_write_text

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 16px 48px; color: #222; }
h1 { font-size: 22px; margin: 20px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: #666; margin: 0 0 12px; } .note { color: #8a5a00; } .bad { color: #b00020; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img.fig { max-width: 100%; display: block; margin: 6px 0; }
code, pre { font: 12px ui-monospace, monospace; background: #f6f6f6; }
pre { padding: 8px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
nav a { margin-right: 12px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; }
.thumbs figure { margin: 0; font-size: 12px; } .thumbs img { display: block; border: 1px solid #ccc; }
.box { display: none; position: fixed; inset: 0; background: rgba(0, 0, 0, .85); z-index: 9;
       align-items: center; justify-content: center; flex-direction: column; color: #fff; }
.box:target { display: flex; } .box img { max-width: 96vw; max-height: 88vh; }
.box a { color: #fff; }
"""

BASE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{ style }}</style></head>
<body>
<h1>{{ title }}</h1>
<p class="sub">{{ subtitle }}</p>
<nav>{% for id, name in nav %}<a href="#{{ id }}">{{ name }}</a>{% endfor %}</nav>
{% block body %}{% endblock %}
<p class="sub">Written by ssseg {{ version }} on {{ written }}; the same data as JSON: <a href="{{ json_name }}">{{ json_name }}</a>.</p>
</body></html>
"""

MACROS = """
{% macro figure(uri, alt) %}<img class="fig" src="{{ uri }}" alt="{{ alt }}">{% endmacro %}
{% macro table(head, rows, numeric=()) %}<table><tr>{% for h in head %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}<td{% if loop.index0 in numeric %} class="n"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>{% endmacro %}
{% macro pictures(items) %}<div class="thumbs">{% for p in items %}
<figure><a href="#{{ p.id }}"><img src="{{ p.thumb }}" alt="{{ p.caption }}"></a><figcaption>{{ p.caption }}</figcaption></figure>
<div class="box" id="{{ p.id }}"><a href="#_"><img src="{{ p.full }}" alt="{{ p.caption }}" loading="lazy"></a>
<p>{{ p.caption }} — {{ p.panels }}{% if p.note %} ({{ p.note }}){% endif %} · <a href="#_">close</a></p></div>
{% endfor %}</div>{% endmacro %}
"""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def png(data: bytes) -> str:
    return data_uri(data, "image/png")


def jpeg(data: bytes) -> str:
    return data_uri(data, "image/jpeg")


def render(body: str, **context) -> str:
    """``body``: a template that extends the base page ({% block body %}) and may use the macros."""
    try:
        import jinja2
    except ImportError:
        raise ReportError("writing a report needs Jinja2, which is not installed",
                          fix="pip install 'ssseg[label]' (or [train])") from None
    env = jinja2.Environment(loader=jinja2.DictLoader({"base.html": BASE, "macros.html": MACROS, "page.html": body}),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("page.html").render(style=STYLE, **context)


def write(html_path: Path, html: str, data: dict) -> tuple[Path, Path]:
    """report.html and its JSON (report.json beside it)."""
    json_path = html_path.with_suffix(".json")
    atomic_write_text(json_path, json.dumps(data, indent=1) + "\n")
    atomic_write_text(html_path, html)
    return html_path, json_path
