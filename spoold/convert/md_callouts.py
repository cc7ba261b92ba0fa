"""Callouts from every Markdown dialect, rendered as one: GitHub's alert.

Python-Markdown/MkDocs admonitions (`!!! note "Title"`, collapsible `???` and `???+`)
come from mdit-py-plugins' admon plugin; Docusaurus (`:::tip[Title]`, `:::tip Title`),
VitePress (`::: warning Title`, `::: details`) and pandoc/Quarto fenced divs
(`::: {.callout-note}`, `::: Warning`) from its container plugin. A core rule then turns
each into the tokens markdown-it-py gives a GitHub alert (`> [!NOTE]`):

    <div class="markdown-alert markdown-alert-note callout-KIND">
    <p class="markdown-alert-title">Title</p> ...

so the themes, the PDF and the DOCX writer (callout paragraph styles) treat every
dialect's callout alike. A fenced div whose class is no callout kind is a plain
`<div>` with its classes and id (pandoc's meaning); a collapsible block is printed open.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from mdit_py_plugins.admon import admon_plugin
from mdit_py_plugins.container import container_plugin

from .md_attrs import attributes

# A callout kind (as the dialects name them) -> the GitHub alert colour it is shown in.
_COLOURS = {
    "note": (
        "note",
        "info",
        "abstract",
        "summary",
        "tldr",
        "todo",
        "seealso",
        "secondary",
        "primary",
    ),
    "tip": ("tip", "hint", "success", "check", "done", "ok"),
    "important": ("important", "question", "help", "faq", "example", "quote", "cite"),
    "warning": ("warning", "caution", "attention"),
    "caution": ("danger", "error", "failure", "fail", "missing", "bug"),
}
KIND_COLOUR = {kind: colour for colour, kinds in _COLOURS.items() for kind in kinds}
# Containers that are callouts by name alone (VitePress `details` is printed open).
CONTAINER_KINDS = frozenset(KIND_COLOUR) | {"details"}
CONTAINER = "callout"
# `:::kind[Title]`, `:::kind Title`, `::: kind`; `::: {#id .class}`, `::: Warning`.
_CONTAINER_INFO = re.compile(
    r"^\s*(?:(?P<kind>[A-Za-z][\w-]*)\s*(?:\[(?P<bracket>.*)\]\s*$|(?P<rest>.*))|(?P<attrs>\{.*\}))\s*$"
)


def _container_info(params: str) -> tuple[str, str, dict[str, str]] | None:
    """(kind, title, attributes) of a `:::` line, or None when it is not one we read.

    A callout kind gives a callout (a title in brackets or after the kind); pandoc's
    `::: name` or `::: {attrs}` gives a div with those classes; anything else is text.
    """
    m = _CONTAINER_INFO.match(params)
    if m is None:
        return None
    if m["attrs"] is not None:
        attrs = attributes(m["attrs"][1:-1])
        if attrs is None:
            return None
        classes = attrs.get("class", "").split()
        kind = next((c.removeprefix("callout-") for c in classes if _callout_class(c)), "")
        return kind, "", attrs
    kind = m["kind"].lower()
    title = (m["bracket"] if m["bracket"] is not None else m["rest"] or "").strip()
    if kind in CONTAINER_KINDS:
        return kind, title, {}
    if not title:  # pandoc: `::: Warning` is a div of class "Warning"
        return "", "", {"class": m["kind"]}
    return None


def _callout_class(name: str) -> bool:
    """`note`, or Quarto's `callout-note`."""
    return name.lower().removeprefix("callout-") in CONTAINER_KINDS


def _validate(params: str, markup: str) -> bool:
    return _container_info(params) is not None


def _alert_open(token: Token, kind: str, extra: dict[str, str]) -> None:
    colour = KIND_COLOUR.get(kind, "note")
    classes = ["markdown-alert", f"markdown-alert-{colour}", f"callout-{kind}"]
    classes += [c for c in extra.pop("class", "").split() if not _callout_class(c)]
    token.type, token.tag = "alert_open", "div"
    token.attrs = {"class": " ".join(dict.fromkeys(classes)), **extra}
    token.meta = {"kind": kind}


def _title_tokens(title: str, level: int) -> list[Token]:
    p_open = Token("alert_title_open", "p", 1, block=True, level=level + 1)
    p_open.attrSet("class", "markdown-alert-title")
    inline = Token("inline", "", 0, content=title, children=[], level=level + 2)
    p_close = Token("alert_title_close", "p", -1, block=True, level=level + 1)
    return [p_open, inline, p_close]


def _containers(state: StateCore) -> None:
    """Container and admonition tokens become alert tokens (before inline parsing)."""
    out: list[Token] = []
    closing: list[str] = []  # per open container: the type its close token gets
    for token in state.tokens:
        if token.type == f"container_{CONTAINER}_open":
            info = _container_info(token.info) or ("", "", {})
            kind, title, attrs = info
            if kind:
                _alert_open(token, kind, dict(attrs))
                out.append(token)
                out.extend(_title_tokens(title or _default_title(kind), token.level))
                closing.append("alert_close")
            else:
                token.type, token.attrs = "fenced_div_open", dict(attrs)
                out.append(token)
                closing.append("fenced_div_close")
            continue
        if token.type == f"container_{CONTAINER}_close":
            token.type, token.tag = closing.pop() if closing else "fenced_div_close", "div"
        elif token.type == "admonition_open":
            kind = str(token.meta.get("tag") or "note")
            extra = {"class": " ".join(str(token.attrs.get("class", "")).split()[1:])}
            _alert_open(token, kind, extra)
        elif token.type == "admonition_close":
            token.type = "alert_close"
        elif token.type in ("admonition_title_open", "admonition_title_close"):
            token.type = token.type.replace("admonition", "alert")
            token.attrs = {"class": "markdown-alert-title"} if token.nesting == 1 else {}
        out.append(token)
    state.tokens = out


def _default_title(kind: str) -> str:
    return kind.title()


# Hugo themes' callout shortcodes (Geekdoc and Book `hint`, Docsy `alert`, Learn and
# Relearn `notice`, LoveIt `admonition`, `callout`); `expand`/`details` fold like <details>.
SHORTCODE_CALLOUTS = frozenset({"hint", "alert", "notice", "admonition", "callout"})
SHORTCODE_FOLDS = frozenset({"expand", "details"})
_SHORTCODE_OPEN = re.compile(
    r"^[ \t]{0,3}\{\{([<%])-?\s*([A-Za-z][\w-]*)\s*(.*?)\s*-?[>%]\}\}[ \t]*$"
)
_SHORTCODE_ARG = re.compile(r"""(?:([\w-]+)=)?("[^"]*"|'[^']*'|[^\s"']+)""")


def _shortcode_callout(name: str, args: str) -> tuple[str, str] | None:
    """(kind, title) of a callout shortcode, or None when `name` is no callout."""
    named: dict[str, str] = {}
    positional: list[str] = []
    for key, value in _SHORTCODE_ARG.findall(args):
        value = value.strip("\"'")
        if key:
            named[key.lower()] = value
        else:
            positional.append(value)
    name = name.lower()
    if name in SHORTCODE_FOLDS:
        return "details", named.get("title") or (positional[0] if positional else name.title())
    if name in SHORTCODE_CALLOUTS:
        kind = named.get("type") or named.get("color") or named.get("context")
        kind = (kind or (positional[0] if positional else "note")).lower()
        title = named.get("title") or (positional[1] if len(positional) > 1 else "")
    elif name in KIND_COLOUR:
        kind, title = name, named.get("title") or (positional[0] if positional else "")
    else:
        return None
    return (kind if kind in KIND_COLOUR else "note"), title or kind.title()


def _closing_line(state: StateBlock, start: int, end: int, name: str) -> int | None:
    """The line of the shortcode's closing tag (nested ones of the same name skipped)."""
    closing = re.compile(rf"^[ \t]*\{{\{{[<%]-?\s*/\s*{re.escape(name)}\s*-?[>%]\}}\}}[ \t]*$")
    depth = 0
    for line in range(start + 1, end):
        text = state.src[state.bMarks[line] : state.eMarks[line]]
        opened = _SHORTCODE_OPEN.match(text)
        if opened is not None and opened.group(2) == name:
            depth += 1
        elif closing.match(text):
            if depth == 0:
                return line
            depth -= 1
    return None


def _shortcode(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """`{{< hint warning >}}` ... `{{< /hint >}}` on lines of their own: a callout."""
    if state.sCount[start] - state.blkIndent >= 4:
        return False
    m = _SHORTCODE_OPEN.match(state.src[state.bMarks[start] : state.eMarks[start]])
    found = _shortcode_callout(m.group(2), m.group(3)) if m else None
    last = _closing_line(state, start, end, m.group(2)) if m and found else None
    if m is None or found is None or last is None:
        return False
    if silent:
        return True
    kind, title = found
    token = state.push("alert_open", "div", 1)
    _alert_open(token, kind, {})
    token.map = [start, last + 1]
    for t in _title_tokens(title, token.level - 1):
        state.tokens.append(t)
    old_max = state.lineMax
    state.lineMax = last
    state.md.block.tokenize(state, start + 1, last)
    state.lineMax = old_max
    state.push("alert_close", "div", -1)
    state.line = last + 1
    return True


def callouts_plugin(md: MarkdownIt) -> None:
    """Admonitions, `:::` containers and callout shortcodes as alerts; add before attrs
    and anchors (and before the template-tag rule, which drops other shortcodes)."""
    md.use(admon_plugin)
    md.use(container_plugin, name=CONTAINER, validate=_validate)
    md.block.ruler.before(
        "fence",
        "shortcode_callout",
        _shortcode,
        {"alt": ["paragraph", "reference", "blockquote", "list"]},
    )
    md.core.ruler.after("block", "spoold_callouts", _containers)
