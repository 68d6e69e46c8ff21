"""What keeps the translations complete: extraction as ``scripts/i18n update`` does it, and the checks
``tests/unit/test_translations.py`` (and ``scripts/i18n check``) make on each catalogue."""

from __future__ import annotations

import configparser
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("hwb_client", "hwb_sandbox")
LANGUAGES = ("cy",)
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None, "ngettext": (1, 2)}
# {name}, {name!r}, {0:>3} ... and %(name)s, %s, %d: what str.format and the % operator fill in.
_BRACES = re.compile(r"\{[^{}]*\}")
_PERCENT = re.compile(r"%\(\w+\)[sdrif]|%[sdrif]")


def method_map() -> tuple[list[tuple[str, str]], dict[str, dict[str, str]]]:
    """``babel.cfg`` as pybabel reads it: [(pattern, method)] and each pattern's options."""
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "babel.cfg", encoding="utf-8")
    methods, options = [], {}
    for section in parser.sections():
        method, pattern = (part.strip() for part in section.split(":", 1))
        methods.append((pattern, method))
        options[pattern] = dict(parser.items(section))
    return methods, options


#: Packages whose text is in another package's catalogue (``scripts/i18n``'s ``extra_sources``).
EXTRA_SOURCES = {"hwb_client": ("hwb_demo",)}  # the demo speaks through the client's catalogue


def extracted(source: Path) -> set[str | tuple[str, str]]:
    """Every msgid (a tuple for singular/plural) marked in ``source`` (and the packages beside it whose
    text goes into its catalogue)."""
    methods, options = method_map()
    found: set[str | tuple[str, str]] = set()
    extra = [source.parent / name for name in EXTRA_SOURCES.get(source.name, ())]
    for directory in [source, *(path for path in extra if path.is_dir())]:
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(directory), methods, options, keywords=KEYWORDS, comment_tags=()
        ):
            found.add(message if isinstance(message, str) else (message[0], message[1]))
    return found


def catalogue_path(domain: str, lang: str, root: Path = ROOT) -> Path:
    return root / "src" / domain / "locale" / lang / "LC_MESSAGES" / f"{domain}.po"


def read_catalogue(path: Path, lang: str) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=lang)


def messages(catalogue: Catalog) -> list[Message]:
    return [m for m in catalogue if m.id]


def key(message: Message) -> str | tuple[str, str]:
    return message.id if isinstance(message.id, str) else (message.id[0], message.id[1])


def untranslated(catalogue: Catalog) -> list[str]:
    """Entries with an empty translation (any plural form) or marked fuzzy."""
    bad = []
    for message in messages(catalogue):
        forms = message.string if isinstance(message.string, (tuple, list)) else (message.string,)
        if (
            message.fuzzy
            or not all(forms)
            or len(forms) < (catalogue.num_plurals if message.pluralizable else 1)
        ):
            bad.append(str(key(message)))
    return bad


def placeholders(text: str) -> Counter[str]:
    text = text.replace("{{", "").replace("}}", "")
    return Counter(_BRACES.findall(text) + _PERCENT.findall(text))


@dataclass(frozen=True)
class Mismatch:
    msgid: str
    form: int
    expected: Counter[str]
    found: Counter[str]


def placeholder_mismatches(catalogue: Catalog) -> list[Mismatch]:
    """Translations that drop or add a placeholder: every form keeps the plural msgid's set."""
    bad = []
    for message in messages(catalogue):
        ids = (message.id,) if isinstance(message.id, str) else tuple(message.id)
        expected = placeholders(ids[-1])
        forms = message.string if isinstance(message.string, (tuple, list)) else (message.string,)
        for index, form in enumerate(forms):
            if form and placeholders(form) != expected:
                bad.append(Mismatch(str(ids[0]), index, expected, placeholders(form)))
    return bad


def stale(source: Path, catalogue: Catalog) -> tuple[set[str | tuple[str, str]], set[str | tuple[str, str]]]:
    """(marked in the source but not in the catalogue, in the catalogue but no longer in the source)."""
    in_source = extracted(source)
    in_catalogue = {key(m) for m in messages(catalogue)}
    return in_source - in_catalogue, in_catalogue - in_source
