"""The Welsh catalogues are complete, current and faithful to their placeholders; and each check
catches the fault it is for (a planted untranslated sentence, a planted dropped placeholder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from babel.messages.pofile import write_po

from i18n_checks import (
    DOMAINS,
    LANGUAGES,
    ROOT,
    catalogue_path,
    extracted,
    placeholder_mismatches,
    read_catalogue,
    stale,
    untranslated,
)

CATALOGUES = [(domain, lang) for domain in DOMAINS for lang in LANGUAGES]


@pytest.mark.parametrize(("domain", "lang"), CATALOGUES)
def test_every_message_has_a_translation(domain: str, lang: str) -> None:
    missing = untranslated(read_catalogue(catalogue_path(domain, lang), lang))
    assert not missing, f"{len(missing)} untranslated in {domain} ({lang}); translate them:\n" + "\n".join(
        missing
    )


@pytest.mark.parametrize(("domain", "lang"), CATALOGUES)
def test_the_catalogue_is_current_with_the_source(domain: str, lang: str) -> None:
    new, gone = stale(ROOT / "src" / domain, read_catalogue(catalogue_path(domain, lang), lang))
    assert not new and not gone, (
        f"{domain} ({lang}) is stale: run scripts/i18n update, then translate.\n"
        f"marked in the source, not in the catalogue: {sorted(map(str, new))}\n"
        f"in the catalogue, gone from the source: {sorted(map(str, gone))}"
    )


@pytest.mark.parametrize(("domain", "lang"), CATALOGUES)
def test_translations_keep_every_placeholder(domain: str, lang: str) -> None:
    bad = placeholder_mismatches(read_catalogue(catalogue_path(domain, lang), lang))
    assert not bad, "\n".join(f"{m.msgid!r} form {m.form}: {dict(m.expected)} → {dict(m.found)}" for m in bad)


def test_a_planted_untranslated_message_is_caught(tmp_path: Path) -> None:
    source = tmp_path / "hwb_client"
    shutil.copytree(ROOT / "src" / "hwb_client", source, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    planted = "A planted sentence that nobody has translated"
    with (source / "cli.py").open("a", encoding="utf-8") as handle:
        handle.write(f"\n\ndef _planted() -> str:\n    return _({planted!r})\n")
    catalogue = read_catalogue(catalogue_path("hwb_client", "cy"), "cy")
    assert planted in extracted(source)
    new, _gone = stale(source, catalogue)
    assert new == {planted}

    catalogue.add(planted, "")  # what scripts/i18n update does with it: in, untranslated
    assert str(planted) in untranslated(catalogue)


def test_a_planted_dropped_placeholder_is_caught(tmp_path: Path) -> None:
    catalogue = read_catalogue(catalogue_path("hwb_client", "cy"), "cy")
    catalogue.add("school {dfes}: no state yet", "ysgol: dim cyflwr eto")
    catalogue.add(
        ("{count} planted learner", "{count} planted learners"), ("dysgwr",) + ("{count} dysgwr",) * 5
    )
    bad = {(m.msgid, m.form) for m in placeholder_mismatches(catalogue)}
    assert {("school {dfes}: no state yet", 0), ("{count} planted learner", 0)} <= bad
    path = tmp_path / "planted.po"
    with path.open("wb") as handle:  # and it survives a round trip through the file format
        write_po(handle, catalogue)
    assert {("school {dfes}: no state yet", 0)} <= {
        (m.msgid, m.form) for m in placeholder_mismatches(read_catalogue(path, "cy"))
    }
