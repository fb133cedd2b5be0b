"""Lookup `medfed_regions`: the federation's regions and their infrastructure facts, from regions/ on the controller.

    query('medfed_regions', medfed_regions_dir)  ->  [{"code": "kz", "infra": {...regions/kz/infra.json...}}, ...]

A region is a folder with a region.toml (as the node itself decides, medplat.config.known_regions); its
infra.json holds the zones, backup zones, cloud regions and endpoint host suffixes of the country. One
lookup instead of a country table in the roles, so a fourth country is its regions/<code>/ folder only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
name: medfed_regions
short_description: MedFed regions and their regions/<code>/infra.json
description: One item per regions/<code>/ folder holding a region.toml, with the parsed infra.json (empty without one).
options:
  _terms:
    description: The regions folder of the repository.
    required: true
"""

CODE = re.compile(r"^[a-z]{2}$")


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for term in terms:
            directory = Path(str(term))
            if not directory.is_dir():
                raise AnsibleError(f"medfed_regions: {directory} is not a folder")
            for folder in sorted(p for p in directory.iterdir() if CODE.match(p.name) and (p / "region.toml").is_file()):
                infra_file = folder / "infra.json"
                try:
                    infra = json.loads(infra_file.read_text(encoding="utf-8")) if infra_file.is_file() else {}
                except ValueError as exc:
                    raise AnsibleError(f"medfed_regions: {infra_file}: not JSON ({exc})") from None
                found.append({"code": folder.name, "infra": infra})
        return found
