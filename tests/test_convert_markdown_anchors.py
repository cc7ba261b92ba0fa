"""Markdown as people write it: attributes, ids, internal links, alerts and raw HTML.

Checked in the HTML (lxml), in the PDF (pypdf link annotations and named
destinations, pdftotext, pdfimages, pdfminer) and through the sanitiser.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from PIL import Image

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters
from spoold.convert.markdown import markdown_to_html

from .conftest import pdftotext
from .corpus_measure import html_links, pdf_links

load_converters()


def body(text: str) -> Any:
    return lxml.html.document_fromstring(markdown_to_html(text, "doc").encode()).find("body")


def convert(target: str, source: Path, **options: Any) -> tuple[Path, ConversionContext]:
    ctx = ConversionContext(job_root=source.parent, options=ConvertOptions(**options))
    converter = get_converter("md", target)
    assert converter is not None
    out = source.with_suffix(f".{target}")
    converter.convert(source, out, ctx)
    return out, ctx


# --- attributes and ids ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("## Install guide {#setup .wide data-x=1}", "h2"),  # pandoc, Hugo, Docusaurus
        ("### Install guide {: #setup .wide }", "h3"),  # kramdown, Python-Markdown
        ("#### Install guide { #setup }", "h4"),  # mkdocs attr_list
        ("Install guide {#setup}\n-------------", "h2"),  # setext
    ],
)
def test_heading_attributes_give_the_id_and_leave_the_text(line: str, level: str) -> None:
    root = body(f"{line}\n\nSee [the guide](#setup).\n")
    heading = root.find(level)
    assert heading.get("id") == "setup"
    assert heading.text_content() == "Install guide"
    assert "{" not in lxml.html.tostring(root, encoding="unicode").split("</h")[0]
    assert root.xpath("//a")[0].get("href") == "#setup"


def test_heading_attribute_classes_and_pandoc_unnumbered() -> None:
    root = body("# Preface {- .intro}\n")
    assert root.find("h1").get("class") == "unnumbered intro"
    assert root.find("h1").text_content() == "Preface"


@pytest.mark.parametrize(
    "line",
    ["## Using {braces} in text", "## Escaped \\{#not-an-id}", "## Set {a, b}"],
)
def test_braces_that_are_not_attributes_stay_text(line: str) -> None:
    heading = body(line + "\n").find("h2")
    assert "{" in heading.text_content()
    assert heading.get("id")  # the automatic slug


def test_explicit_ids_win_and_slugs_stay_unique() -> None:
    root = body(
        "## Intro\n\n## Usage\n\n## Usage\n\n## Other {#intro}\n\n## Ünïcode Café!\n\n## ???\n"
    )
    ids = [h.get("id") for h in root.iter("h2")]
    # The explicit #intro keeps its name; the earlier "Intro" heading steps aside.
    assert ids == ["intro-1", "usage", "usage-1", "intro", "ünïcode-café", "section"]


def test_fenced_code_attributes_pandoc_and_info_string_forms() -> None:
    root = body(
        "```{.python #first .numberLines}\nprint(1)\n```\n\n"
        "```rust {#second}\nfn main() {}\n```\n\n"
        "```js\nx()\n```\n"
    )
    pres = root.findall("pre")
    assert [p.get("id") for p in pres] == ["first", "second", None]
    assert pres[0].get("class") == "numberLines"
    codes = [p.find("code").get("class") for p in pres]
    assert codes == ["language-python", "language-rust", "language-js"]


def test_inline_attributes_on_images_links_and_code() -> None:
    root = body(
        "![logo](logo.png){#logo width=120} [site](https://example.com){#out .ext} `x`{.py}\n"
    )
    img = root.find(".//img")
    assert (img.get("id"), img.get("width")) == ("logo", "120")
    link = root.find(".//a")
    assert (link.get("id"), link.get("class")) == ("out", "ext")
    assert root.find(".//code").get("class") == "py"


def test_bracketed_span_sets_an_anchor_mid_text() -> None:
    root = body("An [anchor here]{#here .hl} and [a link](#here); [plain] stays.\n")
    span = root.find(".//span")
    assert (span.get("id"), span.get("class"), span.text) == ("here", "hl", "anchor here")
    assert root.find(".//a").get("href") == "#here"
    assert "[plain] stays." in root.find("p").text_content()


def test_inline_attributes_kramdown_colon_form() -> None:
    root = body('[Get started](start.md){: .md-button #go} ![i](i.png){: width="50"} end {: .x}\n')
    link = root.find(".//a")
    assert (link.get("class"), link.get("id")) == ("md-button", "go")
    assert root.find(".//img").get("width") == "50"
    # After plain text an attribute block means nothing: it stays as written.
    assert root.find("p").text_content().endswith("end {: .x}")


def test_attributes_cannot_add_event_handlers_or_script_urls(tmp_path: Path) -> None:
    src = tmp_path / "doc.md"
    src.write_text(
        '# Title {#t onclick="evil()"}\n\n'
        '[x](https://example.com){onmouseover="evil()" href="javascript:evil()"}\n\n'
        '```{.py onload="evil()"}\nx\n```\n\n'
        '![pic](pic.png){src="/etc/passwd" srcset="http://evil.example/x.png 2x"}\n'
    )
    Image.new("RGB", (4, 4), "blue").save(tmp_path / "pic.png")
    out, _ = convert("html", src)
    data = out.read_text()
    assert "evil" not in data
    root = lxml.html.document_fromstring(out.read_bytes())
    assert root.find(".//h1").get("id") == "t"
    assert root.find(".//a").get("href") == "https://example.com"
    # The image is the one the Markdown names: attributes cannot swap its source.
    assert root.find(".//img").get("src").startswith("data:image/png")
    assert "passwd" not in data and "evil.example" not in data


# --- internal links ---------------------------------------------------------------------


def test_internal_links_name_existing_ids() -> None:
    root = body(
        '# Café Menu\n\n## Install Guide\n\n<a name="legacy"></a>\n\n'
        "[a](#café-menu) [b](#caf%C3%A9-menu) [c](#Install-Guide) [d](#install-guide)"
        " [e](#legacy) [f](#nowhere)\n"
    )
    hrefs = [a.get("href") for a in root.iter("a") if a.get("href")]
    assert hrefs == [
        "#café-menu",
        "#café-menu",
        "#install-guide",
        "#install-guide",
        "#legacy",
        "#nowhere",  # a link to nothing stays as written
    ]


def test_md_to_html_internal_links_resolve_and_old_name_anchors_get_ids(tmp_path: Path) -> None:
    src = tmp_path / "doc.md"
    src.write_text(
        '## Start {#start}\n\n<a name="old"></a>Legacy anchor.\n\n'
        "```py {#listing}\nx\n```\n\nSee [start](#start), [old](#old), [listing](#listing),"
        " [auto](#more-text).\n\n## More text\n\nNote.[^n]\n\n[^n]: A footnote.\n"
    )
    out, _ = convert("html", src)
    links = html_links(out.read_bytes())
    assert links.unresolved == []
    assert links.targets == ["start", "old", "listing", "more-text"]
    assert links.footnote_targets == ["fn1", "fnref1"]


def test_pdf_internal_links_jump_to_named_destinations(tmp_path: Path) -> None:
    src = tmp_path / "doc.md"
    filler = "\n\n".join(["Filler paragraph " * 40] * 12)
    src.write_text(
        "# Guide {#guide}\n\nJump to [details](#details), [café](#café), [code](#listing)"
        f" and [nowhere](#nowhere).\n\n{filler}\n\n## Details {{#details}}\n\ntext\n\n"
        "## Café\n\n```py {#listing}\nx = 1\n```\n"
    )
    out, ctx = convert("pdf", src)
    links = pdf_links(out)
    assert sorted(t for t in links.targets if t) == ["café", "details", "listing"]
    assert all(links.resolved)
    # The target is on a later page than the link (page 1): the jump goes somewhere.
    assert links.destinations["details"] > 0
    assert {"guide", "details", "café", "listing"} <= set(links.destinations)
    assert any("#nowhere" in w for w in ctx.warnings)  # a dangling link is reported


# --- GitHub alerts ------------------------------------------------------------------------


ALERTS = "".join(
    f"> [!{kind}]\n> Text of the {kind.lower()} alert.\n\n"
    for kind in ("NOTE", "TIP", "IMPORTANT", "WARNING", "CAUTION")
)


def test_github_alerts_become_titled_callouts() -> None:
    root = body(ALERTS + "> [!NOTE] not alone on its line\n\n> Plain quote.\n")
    alerts = root.xpath("//div[contains(@class,'markdown-alert')]")
    kinds = ["note", "tip", "important", "warning", "caution"]
    assert [a.get("class") for a in alerts] == [f"markdown-alert markdown-alert-{k}" for k in kinds]
    titles = [a.find("p").text for a in alerts]
    assert titles == ["Note", "Tip", "Important", "Warning", "Caution"]
    assert [a.findall("p")[1].text for a in alerts] == [f"Text of the {k} alert." for k in kinds]
    assert len(root.findall("blockquote")) == 2  # ordinary quotes stay quotes


@pytest.mark.parametrize("theme", ["default", "handout"])
def test_alerts_in_pdf_have_titles_and_coloured_borders(tmp_path: Path, theme: str) -> None:
    # The colours come from the rules both themes share (themes/shared/).
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTCurve

    src = tmp_path / "doc.md"
    src.write_text(ALERTS)
    out, _ = convert("pdf", src, theme=theme)
    text = pdftotext(out)
    for title in ("Note", "Tip", "Important", "Warning", "Caution"):
        assert f"{title}\nText of the {title.lower()} alert." in text
    colours = set()
    stack: list[Any] = list(extract_pages(out))
    while stack:
        item = stack.pop()
        if isinstance(item, LTCurve) and item.non_stroking_color:
            colours.add(tuple(round(c * 255) for c in item.non_stroking_color))
        elif hasattr(item, "__iter__"):
            stack.extend(item)
    # GitHub's colours: note blue, tip green, important purple, warning amber, caution red.
    for rgb in ((9, 105, 218), (26, 127, 55), (130, 80, 223), (154, 103, 0), (207, 34, 46)):
        assert rgb in colours, (rgb, colours)


def test_the_shared_theme_rules_are_not_a_theme() -> None:
    from spoold import settings
    from spoold.convert import html

    assert settings.THEMES == html.THEMES == ("default", "handout")


# --- raw HTML -------------------------------------------------------------------------------

RAW = """# Raw HTML

<details>
<summary>Click to expand</summary>

Hidden body text.

</details>

Press <kbd>Ctrl</kbd>+<kbd>C</kbd>; H<sub>2</sub>O; x<sup>2</sup>; <mark>marked</mark>;
<abbr title="HyperText Markup Language">HTML</abbr><br>next line

<img src="wide.png" width="100" alt="wide">
"""


def test_raw_html_survives_the_sanitiser(tmp_path: Path) -> None:
    Image.new("RGB", (400, 200), "red").save(tmp_path / "wide.png")
    src = tmp_path / "doc.md"
    src.write_text(RAW)
    out, ctx = convert("html", src)
    root = lxml.html.document_fromstring(out.read_bytes())
    assert root.find(".//details/summary").text == "Click to expand"
    assert "Hidden body text." in root.find(".//details").text_content()
    assert [k.text for k in root.iter("kbd")] == ["Ctrl", "C"]
    assert (root.find(".//sub").text, root.find(".//sup").text) == ("2", "2")
    assert root.find(".//mark").text == "marked"
    assert root.find(".//abbr").get("title") == "HyperText Markup Language"
    assert root.find(".//br") is not None
    img = root.find(".//img")
    assert img.get("width") == "100" and img.get("src").startswith("data:image/png")
    assert not [w for w in ctx.warnings if "removed" in w]


def test_raw_html_in_pdf_details_open_and_image_width(tmp_path: Path) -> None:
    Image.new("RGB", (400, 200), "red").save(tmp_path / "wide.png")
    src = tmp_path / "doc.md"
    src.write_text(RAW)
    out, _ = convert("pdf", src)
    text = pdftotext(out)
    # Paper cannot be clicked: the details are printed open, under their summary.
    assert "Click to expand\nHidden body text." in text
    assert "H2O" in text and "next line" in text
    rows = subprocess.run(
        ["pdfimages", "-list", str(out)], check=True, capture_output=True, text=True
    ).stdout.splitlines()[2:]
    x_ppi = int(rows[0].split()[12])
    # 400 pixels shown 100 CSS px (75 pt) wide: 384 pixels per inch, not 96.
    assert x_ppi == pytest.approx(384, abs=2)
