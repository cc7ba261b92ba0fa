"""Writing systems: which script a text is in, and whether the installed fonts cover it.

- `detect_language(text)`: a document that says nothing about its language (no front
  matter `lang`/`dir`, no `<html lang dir>`) gets them from the script most of its
  letters are in: Arabic script is right to left (Persian `fa` when it uses Persian
  letters, Urdu `ur` when Urdu ones, else `ar`), Hebrew `he`; kana means Japanese,
  Hangul Korean, other Han text Chinese; Greek, Thai, Devanagari and a few others have
  one language. Latin and Cyrillic text gets nothing (its language cannot be told).
- `uncovered_scripts(text)`: the scripts of characters no installed font has, with the
  Debian package that adds fonts for them, so a PDF never shows empty boxes silently.
  The installed fonts' coverage is read once per process from fontconfig (`fc-list`,
  about 30 ms).
"""

from __future__ import annotations

import bisect
import functools
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from typing import Any

from lxml import etree


@dataclass(frozen=True)
class Script:
    name: str
    ranges: tuple[tuple[int, int], ...]
    package: str  # Debian package with fonts for it
    lang: str | None = None  # the language a text mostly in this script is in
    rtl: bool = False


_NOTO = "fonts-noto-core"
# The smallest Debian package with Chinese, Japanese and Korean (5 MB installed; Noto
# CJK, 91 MB, draws each language's own forms of shared Han characters).
_CJK = "fonts-wqy-microhei"
SCRIPTS: tuple[Script, ...] = (
    Script(
        "Latin", ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF)), "fonts-dejavu-core"
    ),
    Script("Greek", ((0x370, 0x3FF), (0x1F00, 0x1FFF)), "fonts-dejavu-core", "el"),
    Script("Cyrillic", ((0x400, 0x52F),), "fonts-dejavu-core"),
    Script("Armenian", ((0x530, 0x58F),), _NOTO, "hy"),
    Script("Hebrew", ((0x590, 0x5FF), (0xFB1D, 0xFB4F)), "fonts-dejavu-core", "he", rtl=True),
    Script(
        "Arabic",
        ((0x600, 0x6FF), (0x750, 0x77F), (0x8A0, 0x8FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
        "fonts-dejavu-core",
        "ar",
        rtl=True,
    ),
    Script("Syriac", ((0x700, 0x74F),), _NOTO, "syr", rtl=True),
    Script("Thaana", ((0x780, 0x7BF),), _NOTO, "dv", rtl=True),
    Script("Devanagari", ((0x900, 0x97F),), _NOTO, "hi"),
    Script("Bengali", ((0x980, 0x9FF),), _NOTO, "bn"),
    Script("Gurmukhi", ((0xA00, 0xA7F),), _NOTO, "pa"),
    Script("Gujarati", ((0xA80, 0xAFF),), _NOTO, "gu"),
    Script("Tamil", ((0xB80, 0xBFF),), _NOTO, "ta"),
    Script("Telugu", ((0xC00, 0xC7F),), _NOTO, "te"),
    Script("Kannada", ((0xC80, 0xCFF),), _NOTO, "kn"),
    Script("Malayalam", ((0xD00, 0xD7F),), _NOTO, "ml"),
    Script("Sinhala", ((0xD80, 0xDFF),), _NOTO, "si"),
    Script("Thai", ((0xE00, 0xE7F),), _NOTO, "th"),
    Script("Lao", ((0xE80, 0xEFF),), _NOTO, "lo"),
    Script("Tibetan", ((0xF00, 0xFFF),), _NOTO, "bo"),
    Script("Myanmar", ((0x1000, 0x109F),), _NOTO, "my"),
    Script("Georgian", ((0x10A0, 0x10FF),), _NOTO, "ka"),
    Script("Ethiopic", ((0x1200, 0x139F),), _NOTO, "am"),
    Script("Khmer", ((0x1780, 0x17FF),), _NOTO, "km"),
    Script(
        "Hangul", ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF)), "fonts-noto-cjk", "ko"
    ),
    Script("Kana", ((0x3040, 0x30FF), (0x31F0, 0x31FF)), _CJK, "ja"),
    Script(
        "Han",
        (
            (0x2E80, 0x2FDF),
            (0x3000, 0x303F),
            (0x3400, 0x4DBF),
            (0x4E00, 0x9FFF),
            (0xF900, 0xFAFF),
            (0xFF00, 0xFFEF),
            (0x20000, 0x3134F),
        ),
        _CJK,
        "zh",
    ),
    Script(
        "Emoji",
        ((0x2600, 0x27BF), (0x1F000, 0x1F2FF), (0x1F300, 0x1FAFF)),
        "fonts-noto-color-emoji",
    ),
)
_STARTS: list[int] = []
_BY_START: list[tuple[int, int, Script]] = []
for _script in SCRIPTS:
    for _lo, _hi in _script.ranges:
        _BY_START.append((_lo, _hi, _script))
_BY_START.sort(key=lambda r: r[0])
_STARTS = [r[0] for r in _BY_START]
# Persian and Urdu letters that Arabic does not use.
_PERSIAN = re.compile("[\u067e\u0686\u0698\u06af\u06a9\u06cc]")
_URDU = re.compile("[\u0679\u0688\u0691\u06ba\u06be\u06c1\u06d2]")
# Characters no font needs to draw: controls, spaces, joiners, marks of direction.
_INVISIBLE = re.compile(r"[\s\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff]")
SAMPLE_CHARS = 3


def script_of(ch: str) -> Script | None:
    cp = ord(ch)
    i = bisect.bisect_right(_STARTS, cp) - 1
    if i >= 0 and _BY_START[i][0] <= cp <= _BY_START[i][1]:
        return _BY_START[i][2]
    return None


def _class(ranges: tuple[tuple[int, int], ...]) -> re.Pattern[str]:
    return re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in ranges) + "]")


# One character class per script: counting letters is a regex scan per script (C speed).
_SCRIPT_CLASSES = tuple((script, _class(script.ranges)) for script in SCRIPTS)
_LATIN = _SCRIPT_CLASSES[0][1]
# Only Latin has letters below U+0080: the other scripts are counted in the rest.
_BEYOND_ASCII = re.compile("[^\x00-\x7f]+")


def detect_language(text: str) -> tuple[str | None, str | None]:
    """(lang, dir) for a text whose document declares neither; (None, None) if unsure."""
    if _NOT_LATIN.search(text) is None:
        return None, None  # Latin only (most documents): nothing to tell
    counts = _script_counts(text)
    if counts is None:
        return None, None
    scripts = {s.name: s for s in SCRIPTS}
    letters = sum(counts.values())
    if not letters:
        return None, None
    if counts["Kana"] and counts["Kana"] + counts["Han"] > max(letters * 0.3, counts["Latin"]):
        return "ja", None
    name, count = max(
        ((n, c) for n, c in counts.items() if n not in ("Latin", "Emoji")),
        key=lambda item: item[1],
        default=("", 0),
    )
    # The script of most letters (more than Latin, and at least 30 %), or none.
    if not name or count < max(letters * 0.3, counts["Latin"] + 1) or scripts[name].lang is None:
        return None, None
    script = scripts[name]
    lang = script.lang
    if name == "Arabic":
        lang = "ur" if _URDU.search(text) else "fa" if _PERSIAN.search(text) else "ar"
    return lang, "rtl" if script.rtl else None


def _script_counts(text: str) -> Counter[str] | None:
    """Letters per script (in SCRIPTS order); None when Latin letters are at least as
    many as all others', where no script can win (detect_language's tests both need
    more than the Latin count): a mostly Latin text is not counted through."""
    beyond_ascii = "".join(_BEYOND_ASCII.findall(text))
    counts: Counter[str] = Counter()
    for script, pattern in _SCRIPT_CLASSES:
        scanned = beyond_ascii if script is not SCRIPTS[0] else ""  # Latin: below
        counts[script.name] = len(scanned) - len(pattern.sub("", scanned))
    others = sum(counts.values())
    if others == 0 or any(i >= others for i, _ in enumerate(_LATIN.finditer(text), 1)):
        return None
    counts[SCRIPTS[0].name] = len(text) - len(_LATIN.sub("", text))
    return counts


def first_strong_rtl(text: str) -> bool:
    """Whether the first letter of `text` is of a right-to-left script (as Unicode's
    bidi algorithm picks a paragraph's direction)."""
    for ch in text:
        if ch.isalpha():
            script = script_of(ch)
            return bool(script and script.rtl)
    return False


# Letters of right-to-left scripts (Hebrew to NKo, their presentation forms).
_RTL_LETTERS = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")
# Anything beyond Latin, its punctuation and symbols: a text without it has no other script.
_NOT_LATIN = re.compile("[^\x00-\u024f\u1e00-\u1eff\u2000-\u2bff]")


def has_rtl(text: str) -> bool:
    return _RTL_LETTERS.search(text) is not None


@functools.cache
def installed_coverage() -> tuple[tuple[int, int], ...]:
    """The code point ranges the installed fonts cover, merged (fontconfig)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return ()
    try:
        out = subprocess.run(
            [fc_list, "--format", "%{charset}\n"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    ranges = sorted(
        (int(lo, 16), int(hi or lo, 16))
        for lo, hi in re.findall(r"([0-9a-f]+)(?:-([0-9a-f]+))?", out)
    )
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def covered(cp: int, coverage: tuple[tuple[int, int], ...]) -> bool:
    i = bisect.bisect_right(coverage, (cp, 0x10FFFF)) - 1
    return i >= 0 and coverage[i][0] <= cp <= coverage[i][1]


def uncovered_scripts(text: str) -> list[tuple[str, str, str]]:
    """(script, Debian package, sample characters) for characters of `text` that no
    installed font covers; empty when fontconfig cannot be asked."""
    coverage = installed_coverage()
    if not coverage:
        return []
    missing: dict[str, list[str]] = {}
    packages: dict[str, str] = {}
    for ch in sorted(set(_INVISIBLE.sub("", text))):
        if ord(ch) < 0x20 or covered(ord(ch), coverage):
            continue
        script = script_of(ch)
        name = script.name if script else "other symbols"
        missing.setdefault(name, []).append(ch)
        packages[name] = script.package if script else "fonts-noto-core"
    return [(n, packages[n], "".join(chars[:SAMPLE_CHARS])) for n, chars in missing.items()]


# A few common letters of each script: covering them is covering the script here.
SAMPLES = {
    "Latin": "Aaé",
    "Greek": "Ααω",
    "Cyrillic": "ЖжЯ",
    "Armenian": "Աա",
    "Hebrew": "אש",
    "Arabic": "اسپ",
    "Syriac": "ܐܒ",
    "Thaana": "ތދ",
    "Devanagari": "कन",
    "Bengali": "কন",
    "Gurmukhi": "ਕਨ",
    "Gujarati": "કન",
    "Tamil": "கந",
    "Telugu": "కన",
    "Kannada": "ಕನ",
    "Malayalam": "കന",
    "Sinhala": "කන",
    "Thai": "กน",
    "Lao": "ກນ",
    "Tibetan": "ཀན",
    "Myanmar": "ကန",
    "Georgian": "ანი",
    "Ethiopic": "ሀለ",
    "Khmer": "កន",
    "Hangul": "한글",
    "Kana": "かカ",
    "Han": "中文字",
    "Emoji": "\U0001f600\U0001f44d",
}


def covered_scripts() -> list[str]:
    """Names of the scripts whose common letters the installed fonts all cover."""
    coverage = installed_coverage()
    return [s.name for s in SCRIPTS if all(covered(ord(ch), coverage) for ch in SAMPLES[s.name])]


# Languages written right to left (their primary subtag).
RTL_LANGS = frozenset({"ar", "fa", "he", "iw", "ur", "ps", "sd", "ug", "yi", "dv", "syr", "ckb"})
_NOT_PROSE = ("pre", "code", "kbd", "samp", "script", "style", "svg", "math")


def prose_text(body: Any, limit: int = 200_000) -> str:
    """The body's text without code and scripts, up to `limit` characters."""
    parts: list[str] = []
    size = 0
    inside = 0  # open elements whose text is not prose
    for event, el in etree.iterwalk(body, events=("start", "end")):
        skip = el.tag in _NOT_PROSE
        if event == "start":
            inside += skip
            if el.text and not inside:
                parts.append(el.text)
                size += len(el.text)
        else:
            inside -= skip
            if el.tail and not inside and el is not body:
                parts.append(el.tail)
                size += len(el.tail)
        if size > limit:
            break
    return " ".join(parts)


def apply_language(root: Any) -> None:
    """Give <html> the `lang` and `dir` the document implies, when it says neither:
    `dir` from a right-to-left `lang`, else both from the text's script."""
    body = root.find("body")
    if root.get("dir") or (body is not None and body.get("dir")):
        return
    lang = (root.get("lang") or (body.get("lang") if body is not None else "") or "").strip()
    if lang:
        if lang.split("-")[0].lower() in RTL_LANGS:
            root.set("dir", "rtl")
        return
    if body is None:
        return
    # Latin text only (most documents) implies nothing. The whole text, serialised in C,
    # tells so at a tenth of the cost of walking the tree for its prose (prose_text).
    if _NOT_LATIN.search(etree.tostring(body, method="text", encoding="unicode")) is None:
        return
    found_lang, direction = detect_language(prose_text(body))
    if found_lang:
        root.set("lang", found_lang)
    if direction:
        root.set("dir", direction)


# Scripts a server should cover (README's font packages); others are reported only.
EXPECTED = ("Latin", "Greek", "Cyrillic", "Arabic", "Hebrew", "Han", "Kana", "Hangul", "Emoji")


def font_report() -> tuple[str, str, list[str]]:
    """For `spoold doctor`: (pass or warn, the scripts covered, packages to install)."""
    scripts = covered_scripts()
    if not installed_coverage():
        return "warn", "fontconfig lists no font coverage", []
    missing = [s for s in SCRIPTS if s.name in EXPECTED and s.name not in scripts]
    detail = "scripts covered: " + ", ".join(scripts)
    packages = sorted({s.package for s in missing})
    if missing:
        names = ", ".join(s.name for s in missing)
        detail += f"; no font for {names} (install {' '.join(packages)})"
        return "warn", detail, packages
    return "pass", detail, []


def font_warnings(root: Any) -> list[str]:
    """Warnings for text of the document no installed font can draw (PDF boxes).

    Not checked when the document brings fonts of its own (@font-face): those may
    have the characters.
    """
    if any("@font-face" in (s.text or "") for s in root.iter("style")):
        return []
    body = root.find("body")
    if body is None:
        return []
    text = "".join(t for t in body.itertext())
    return [
        f"no installed font has the {name} characters of this document (e.g. {sample!r}): "
        f"they print as empty boxes; install {package}"
        for name, package, sample in uncovered_scripts(text)
    ]
