"""Every dialect construct, one at a time: what it becomes, and what stays text.

Markdown is rendered with spoold's parser (markdown_to_html) and read back with lxml;
a few constructs are also converted to PDF (pdftotext) and DOCX (pandoc, python-docx).
docs/conversion.md "Markdown dialects" lists the same constructs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from spoold.convert import ConversionContext, ConvertOptions, get_converter, load_converters
from spoold.convert.markdown import markdown_to_html


def body(text: str, warnings: list[str] | None = None) -> Any:
    html = markdown_to_html(text, "doc", warn=None if warnings is None else warnings.append)
    return lxml.html.document_fromstring(html.encode())


def text_of(root: Any) -> str:
    return " ".join(root.find("body").text_content().split())


# --- callouts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "colour", "title"),
    [
        (
            '!!! example "Integrate with site navigation"\n\n    Body.',
            "important",
            "Integrate with site navigation",
        ),
        ("!!! note\n    Body.", "note", "Note"),
        ('!!! danger highlight "Don\'t"\n    Body.', "caution", "Don't"),
        ('??? info "Folded"\n\n    Body.', "note", "Folded"),
        ("???+ tip\n    Body.", "tip", "Tip"),
        (":::tip[My **own** title]\nBody.\n:::", "tip", "My own title"),
        (":::caution\n\nBody.\n\n:::", "warning", "Caution"),
        (":::note Plain title\nBody.\n:::", "note", "Plain title"),
        ("::: warning\nBody.\n:::", "warning", "Warning"),
        ("::: details Click me\nBody.\n:::", "note", "Click me"),
        ("::: {.callout-tip}\nBody.\n:::", "tip", "Tip"),
        ("> [!CAUTION]\n> Body.", "caution", "Caution"),
        ("{{< hint warning >}}\nBody.\n{{< /hint >}}", "warning", "Warning"),
        ('{{% alert title="Heads up" color="info" %}}\nBody.\n{{% /alert %}}', "note", "Heads up"),
        ('{{< expand "More" >}}\nBody.\n{{< /expand >}}', "note", "More"),
    ],
)
def test_every_callout_syntax_is_the_same_callout(source: str, colour: str, title: str) -> None:
    root = body(source)
    (callout,) = root.find_class("markdown-alert")
    assert f"markdown-alert-{colour}" in callout.get("class").split()
    assert callout.find_class("markdown-alert-title")[0].text_content() == title
    assert "Body." in callout.text_content()
    assert not any(m in text_of(root) for m in ("!!!", "???", ":::", "{{", "[!"))


def test_admonition_without_title_and_with_an_empty_one() -> None:
    root = body('!!! warning ""\n    No title here.')
    (callout,) = root.find_class("markdown-alert")
    assert not callout.find_class("markdown-alert-title")
    assert text_of(root) == "No title here."


def test_a_pandoc_fenced_div_of_another_class_is_a_plain_div() -> None:
    root = body("::: {#box .sidebar}\nInside.\n:::\n\n::: Aside\nMore.\n:::")
    divs = root.find("body").findall("div")
    assert [(d.get("id"), d.get("class")) for d in divs] == [("box", "sidebar"), (None, "Aside")]
    assert text_of(root) == "Inside. More."


def test_unrecognised_markers_stay_text() -> None:
    root = body(":::unknown words here\ntext\n\n!!!\n\n===not a tab")
    assert ":::unknown words here" in text_of(root)
    assert "!!!" in text_of(root) and "===not a tab" in text_of(root)


def test_content_tabs_print_every_tab_under_its_title() -> None:
    root = body('=== "Python"\n\n    ```py\n    print(1)\n    ```\n\n=== "Shell"\n\n    Run it.\n')
    titles = [p.text_content() for p in root.find_class("tabbed-title")]
    assert titles == ["Python", "Shell"]
    assert [c.text_content() for c in root.iter("code")] == ["print(1)\n"]
    assert "Run it." in text_of(root) and "===" not in text_of(root)


# --- attributes and ids --------------------------------------------------------------


@pytest.mark.parametrize(
    "ident", ["pandoc.BlockQuote", "a:b", "a_b-c.d", "+projects.enabled", "sec-2.1"]
)
def test_heading_ids_of_any_form_pandoc_accepts(ident: str) -> None:
    root = body(f"## Title {{#{ident}}}\n\n[back](#{ident})")
    heading = root.find(".//h2")
    assert heading.get("id") == ident and heading.text_content() == "Title"
    assert root.find(".//a").get("href") == f"#{ident}"


def test_kramdown_ials_after_before_and_inside_blocks() -> None:
    source = (
        "# Title\n{: .no_toc }\n\nNew\n{: .label .label-green }\n\n{: .warning }\n"
        "A warning.\n\n{: .note-title }\n> Quoted\n\nSome *emph*{: .hot} text.\n\n"
        "{:ref: .big #biggest}\n\nA paragraph\n{: ref}"
    )
    root = body(source)
    assert root.find(".//h1").get("class") == "no_toc"
    paragraphs = root.find("body").findall("p")
    assert [p.get("class") for p in paragraphs[:2]] == ["label label-green", "warning"]
    assert root.find(".//blockquote").get("class") == "note-title"
    assert root.find(".//em").get("class") == "hot"
    assert (paragraphs[-1].get("id"), paragraphs[-1].get("class")) == ("biggest", "big")
    assert "{:" not in text_of(root)


def test_an_ial_cannot_add_event_handlers_or_urls() -> None:
    root = body('Click\n{: onclick="steal()" href="https://evil.example" .ok }')
    p = root.find(".//p")
    assert p.get("class") == "ok" and p.get("onclick") is None and p.get("href") is None


def test_markdown_inside_html_marked_markdown() -> None:
    root = body('<div class="example" markdown="1">\n\nA *real* paragraph\n{: .label }\n\n</div>\n')
    div = root.find(".//div")
    assert div.get("class") == "example" and div.get("markdown") is None
    assert div.find("p").get("class") == "label" and div.find("p/em").text == "real"


def test_ials_inside_code_stay_as_written() -> None:
    root = body("```\n{: .no_toc }\n```\n\nUse `{:toc}` once.")
    assert [c.text_content() for c in root.iter("code")] == ["{: .no_toc }\n", "{:toc}"]


# --- tables of contents --------------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "list_tag"),
    [
        ("* TOC\n{:toc}", "ul"),
        ("1. TOC\n{:toc}", "ol"),
        ("{{TOC}}", "ul"),
        ("[TOC]", "ul"),
        ("[[_TOC_]]", "ul"),
    ],
)
def test_contents_markers_become_a_linked_contents_list(marker: str, list_tag: str) -> None:
    root = body(f"# Guide\n{{: .no_toc }}\n\n{marker}\n\n## One\n\n### One a\n\n## Two\n")
    nav = root.find(".//nav")
    assert nav is not None and nav.get("class") == "toc"
    links = [(a.get("href"), a.text) for a in nav.iter("a")]
    assert links == [("#one", "One"), ("#one-a", "One a"), ("#two", "Two")]
    assert nav[0].tag == list_tag and nav.find(f"{list_tag}/li/{list_tag}") is not None
    assert "TOC" not in text_of(root)


def test_multimarkdown_toc_with_levels() -> None:
    root = body("{{TOC:2-2}}\n\n# Top\n\n## Kept\n\n### Deeper\n")
    assert [a.text for a in root.find(".//nav").iter("a")] == ["Kept"]


# --- metadata ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "---\ntitle: The Title\nauthor: Ada\ndate: 2024-05-01\nlang: de\n---\n\nBody.",
        '+++\ntitle = "The Title"\nauthor = "Ada"\ndate = 2024-05-01\nlang = "de"\n+++\n\nBody.',
        "Title: The Title\nAuthor: Ada\nDate: 2024-05-01\nLanguage: de\n\nBody.",
        "% The Title\n% Ada\n% 2024-05-01\n\nBody.",
    ],
)
def test_metadata_blocks_are_read_never_printed(source: str) -> None:
    root = body(source)
    assert root.findtext(".//title") == "The Title"
    assert root.find(".//meta[@name='author']").get("content") == "Ada"
    assert root.find(".//meta[@name='dcterms.created']").get("content") == "2024-05-01"
    block = root.find(".//header[@class='title-block']")
    assert [el.text for el in block] == ["The Title", "Ada", "2024-05-01"]
    assert text_of(root) == "The Title Ada 2024-05-01 Body."
    if "%" not in source:
        assert root.get("lang") == "de"


def test_a_first_paragraph_that_only_looks_like_metadata_stays_text() -> None:
    root = body("Note: this is an ordinary sentence.\n\nMore.")
    assert text_of(root) == "Note: this is an ordinary sentence. More."
    assert root.find(".//header") is None


def test_dir_from_front_matter_and_rtl_language() -> None:
    assert body("---\ndir: rtl\n---\n\nx").get("dir") == "rtl"
    assert body("---\nlang: he\n---\n\nx").get("lang") == "he"


def test_multimarkdown_variables_critic_markup_abbreviations_and_glossary() -> None:
    source = (
        "Title: Guide\nVersion: 6.1\n\nVersion [%version]; [%missing] stays.\n\n"
        "You can {++add++}, {--cut--}, {~~this~>that~~}, {==mark==}{>>a note<<}.\n\n"
        "[>MMD] and [>(MD) Markdown] and [?AST].\n\n[>MMD]: MultiMarkdown\n[?AST]: Abstract Syntax Tree\n"
    )
    root = body(source)
    text = text_of(root)
    assert "Version 6.1; [%missing] stays." in text
    assert [root.findtext(f".//{t}") for t in ("ins", "del", "mark")] == ["add", "cut", "mark"]
    assert "a note" not in text and "{++" not in text
    abbrs = {a.text: a.get("title") for a in root.iter("abbr")}
    assert abbrs == {"MMD": "MultiMarkdown", "MD": "Markdown"}
    assert root.find(".//dfn").get("title") == "Abstract Syntax Tree"
    assert "[>MMD]:" not in text and "[?AST]:" not in text


# --- template tags -----------------------------------------------------------------


def test_template_tags_are_dropped_and_named_with_their_line() -> None:
    warnings: list[str] = []
    source = (
        '# Page\n\n{{< figure src="x.png" >}}\n\nSee {% link docs/x.md %} and {{% param name %}}.\n\n'
        "```\n{{< kept >}}\n```\n"
    )
    root = body(source, warnings)
    assert text_of(root) == "Page See and . {{< kept >}}"
    assert warnings == [
        'line 3: template tag {{< figure src="x.png" >}} dropped (spoold runs no templates)',
        "line 5: template tag {% link docs/x.md %} dropped (spoold runs no templates)",
        "line 5: template tag {{% param name %}} dropped (spoold runs no templates)",
    ]


def test_hugo_escaped_shortcodes_print_the_shortcode() -> None:
    warnings: list[str] = []
    root = body("Write {{</* hint note */>}} or {{%/* x */%}}.", warnings)
    assert text_of(root) == "Write {{< hint note >}} or {{% x %}}." and warnings == []


def test_jekyll_highlight_is_a_code_block() -> None:
    root = body("{% highlight ruby %}\ndef foo\n  *not emphasis*\nend\n{% endhighlight %}\n")
    code = root.find(".//pre/code")
    assert code.get("class") == "language-ruby" and "*not emphasis*" in code.text


def test_icon_shortcodes_are_left_out_emoji_names_stay() -> None:
    root = body(':octicons-cpu-24: Plugin :material-star:{ .big title="x" } :smile:')
    assert text_of(root) == "Plugin :smile:"


# --- the same in PDF and DOCX --------------------------------------------------------


def test_dialects_in_pdf_and_docx(tmp_path: Path) -> None:
    source = tmp_path / "doc.md"
    source.write_text(
        '+++\ntitle = "Dialects"\n+++\n\n[TOC]\n\n## Setup {#setup.id}\n\n'
        '!!! warning "Mind the gap"\n    Careful.\n\nDone\n{: .label }\n',
        encoding="utf-8",
    )
    load_converters()
    outputs = {}
    for target in ("pdf", "docx"):
        ctx = ConversionContext(job_root=tmp_path, options=ConvertOptions())
        outputs[target] = tmp_path / f"doc.{target}"
        get_converter("md", target).convert(source, outputs[target], ctx)
    pdf = subprocess.run(
        ["pdftotext", str(outputs["pdf"]), "-"], capture_output=True, text=True
    ).stdout
    docx = subprocess.run(
        ["pandoc", "-f", "docx", "-t", "plain", str(outputs["docx"])],
        capture_output=True,
        text=True,
    ).stdout
    for text in (pdf, docx):
        assert "Mind the gap" in text and "Careful." in text and "Done" in text
        for markup in ("+++", "[TOC]", "{#", "!!!", "{:"):
            assert markup not in text
    assert re.search(r"Setup \.{3,} 1\n", pdf)  # the contents line: a leader, the page


def test_multimarkdown_header_labels_only_in_multimarkdown_documents() -> None:
    mmd = body("{{TOC}}\n\n# Intro [Getting Started] #\n\nSee [the intro](#gettingstarted).\n")
    assert mmd.find(".//h1").get("id") == "gettingstarted"
    assert mmd.find(".//h1").text_content() == "Intro"
    plain = body("# Options [deprecated]\n\nText.\n")
    assert plain.find(".//h1").text_content() == "Options [deprecated]"
