"""The shipped seed codebook carries the paper's six factors and every category of Tables 2-7."""

import json
import re
from pathlib import Path

import pytest

from coder.sources.codebook import load

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "codebook" / "sme_internationalization.yaml"

FACTORS = [
    "Triggering factors",
    "Internal factors",
    "External factors",
    "Networking",
    "Barriers and challenges",
    "Operations of internationalization",
]

# Every category of Tables 2-7, by path, with the frequency the table prints.
CATEGORIES = {
    # Table 2
    "Triggering factors/Domestic conditions": 75,
    "Triggering factors/Resource seeking": 50,
    "Triggering factors/Market demands": 69,
    "Triggering factors/Globalization force": 75,
    # Table 3
    "Internal factors/Organizational Capabilities/Availability of resources": 63,
    "Internal factors/Organizational Capabilities/Products Uniqueness or Niche products": 63,
    "Internal factors/Organizational Capabilities/Good reputation or Firm image": 31,
    "Internal factors/Organizational Capabilities/Existence of competitive advantages": 44,
    "Internal factors/Management Capabilities/Highly entrepreneurial attitudes": 75,
    "Internal factors/Management Capabilities/Compelling background": 69,
    "Internal factors/Management Capabilities/Broad experiences": 91,
    "Internal factors/Management Capabilities/Skillful": 88,
    # Table 4
    "External factors/Industrialization/Industrial linkages programs": 88,
    "External factors/Industrialization/Supplier to local or international companies": 59,
    "External factors/Industrialization/Economies of scale – Mass production": 53,
    "External factors/Industrialization/Nature of industry sector": 38,
    "External factors/Government-Related Issues/Policies (economic or political integration)": 68,
    "External factors/Government-Related Issues/Supports and assistance (i.e., training, financial)": 69,
    "External factors/Government-Related Issues/Good infrastructures and location facilities": 50,
    "External factors/Foreign Market Attraction/Larger markets outside": 84,
    "External factors/Foreign Market Attraction/Better and advance opportunities": 66,
    "External factors/Foreign Market Attraction/Competitive markets": 72,
    "External factors/World Integration/Political-related": 68,
    "External factors/World Integration/Economy-related": 72,
    "External factors/Continuous Changes/Societal changes": 88,
    "External factors/Continuous Changes/Technological": 50,
    # Table 5
    "Networking/Government and non-government Institutions": 100,
    "Networking/Personal relations": 81,
    "Networking/Other business players": 75,
    # Table 6
    "Barriers and challenges/Barriers/Lack of resources": 75,
    "Barriers and challenges/Barriers/Financial constraints": 69,
    "Barriers and challenges/Barriers/Entrepreneurs or Managers attitudes": 63,
    "Barriers and challenges/Barriers/Firm Capability": 56,
    "Barriers and challenges/Barriers/Political interference": 56,
    "Barriers and challenges/Barriers/Management incompetence": 31,
    "Barriers and challenges/Barriers/Psychic Distance": 25,
    "Barriers and challenges/Challenges/Handling government regulations and policies": 53,
    "Barriers and challenges/Challenges/Managing local and international operations": 44,
    "Barriers and challenges/Challenges/Competing with other companies": 47,
    # Table 7
    "Operations of internationalization/Modes of foreign entry/Exporting": 75,
    "Operations of internationalization/Modes of foreign entry/Subcontracting, Suppliers or Vendors": 66,
    "Operations of internationalization/Modes of foreign entry/Cooperative arrangements": 56,
    "Operations of internationalization/Modes of foreign entry/Distributors or Agents": 41,
    "Operations of internationalization/Markets Selection/Neighboring countries": 84,
    "Operations of internationalization/Markets Selection/Within South East Asia Region": 53,
    "Operations of internationalization/Markets Selection/Among countries within AFTA": 41,
    "Operations of internationalization/Markets Selection/Distant countries": 34,
    "Operations of internationalization/Markets Selection/Other markets": 28,
}

# Categories that share a merged items cell with the category above them: their items sit there.
MERGED = {
    "External factors/Foreign Market Attraction/Competitive markets",
    "External factors/World Integration/Economy-related",
    "Operations of internationalization/Modes of foreign entry/Subcontracting, Suppliers or Vendors",
    "Operations of internationalization/Modes of foreign entry/Cooperative arrangements",
    "Operations of internationalization/Modes of foreign entry/Distributors or Agents",
    "Operations of internationalization/Markets Selection/Within South East Asia Region",
    "Operations of internationalization/Markets Selection/Among countries within AFTA",
    "Operations of internationalization/Markets Selection/Distant countries",
    "Operations of internationalization/Markets Selection/Other markets",
}


@pytest.fixture(scope="module")
def book():
    return load(SEED)


def test_six_factors_in_the_papers_order(book):
    assert [c.path for c in book.children(None)] == FACTORS


def test_every_category_of_tables_2_to_7_is_a_leaf(book):
    leaves = [c.path for c in book.leaves()]
    assert sorted(leaves) == sorted(CATEGORIES)
    assert len(leaves) == 48


@pytest.mark.parametrize("path", sorted(CATEGORIES))
def test_category_resolves_by_path(book, path):
    code = book.resolve(path)
    assert code.path == path
    assert code.description


@pytest.mark.parametrize("path", sorted(CATEGORIES))
def test_category_items(book, path):
    code = book.resolve(path)
    if path in MERGED:
        assert code.items == []
        assert "merged cell" in code.description
    else:
        assert code.items, f"{path} has no items"


def test_every_code_has_a_stable_id(book):
    ids = [c.id for c in book]
    assert all(ids) and len(set(ids)) == len(ids)
    assert book.resolve("trig-domestic").path == "Triggering factors/Domestic conditions"


def test_seed_frequencies_recorded_as_comments(book):
    by_id = {c.id: c.path for c in book}
    text = SEED.read_text(encoding="utf-8")
    found = {by_id[m[1]]: int(m[2]) for m in re.finditer(r"- id: (\S+)\s+# seed: (\d+)%", text)}
    assert found == CATEGORIES
    assert "N = 32" in book.description


def test_items_verbatim_from_the_paper(book):
    assert book.resolve("trig-global").items[-1] == (
        "Global products – firm preparedness and readiness")
    assert len(book.resolve("net-institutions").items) == 12
    assert len(book.resolve("ops-exporting").items) == 10


def test_schema_json_is_valid_json_and_names_the_keys():
    schema = json.loads((ROOT / "codebook" / "schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["required"]) == {"name", "codes"}
    assert {"id", "name", "items", "codes"} <= set(schema["$defs"]["code"]["properties"])


def test_seed_codebook_validates_against_schema_json():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = json.loads((ROOT / "codebook" / "schema.json").read_text(encoding="utf-8"))
    data = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)
