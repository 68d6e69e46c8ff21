"""The build's one step beyond pyproject.toml: compile the translation catalogues (.po) to .mo.

The .mo files are build products (not in git): every wheel, and so the .deb and the MSI, gets them
compiled from the .po files in the source, by Babel, the same way ``scripts/i18n compile`` does for a
working tree.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DOMAINS = {"hwb_client": "src/hwb_client/locale", "hwb_sandbox": "src/hwb_sandbox/locale"}


class build_py_with_catalogues(build_py):
    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for domain, source in DOMAINS.items():
            for po in sorted(Path(source).glob(f"*/LC_MESSAGES/{domain}.po")):
                target = Path(self.build_lib) / po.relative_to("src").with_suffix(".mo")
                target.parent.mkdir(parents=True, exist_ok=True)
                with po.open("rb") as handle:
                    catalogue = read_po(handle, locale=po.parts[-3], domain=domain)
                with target.open("wb") as handle:
                    write_mo(handle, catalogue, use_fuzzy=False)


setup(cmdclass={"build_py": build_py_with_catalogues})
