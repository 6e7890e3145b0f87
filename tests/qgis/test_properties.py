"""Property tests: conninfo quoting round-trips and redaction always masks."""

from hypothesis import given
from hypothesis import strategies as st

from qfjobs.qgis.datasource import parse_datasource
from qfjobs.qgis.redaction import redact
from qfjobs.qgis.uriparts import parse_conninfo
from qfjobs.qgis.wkbtypes import BASE_TYPES, normalise_name, wkb_type_code

VALUES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30
)


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@given(password=VALUES, user=VALUES)
def test_quoted_values_round_trip(password: str, user: str) -> None:
    text = f"dbname='gis' user={quote(user)} password={quote(password)} table=\"t\" (g)"

    info = parse_conninfo(text)

    assert info.params["password"] == password
    assert info.params["user"] == user
    assert info.table is not None and info.table.geometry_column == "g"


@given(password=VALUES)
def test_redaction_masks_every_quoted_password(password: str) -> None:
    text = f"dbname='gis' host=db password={quote(password)} key='id' table=\"t\" (g)"

    masked = parse_datasource("postgres", redact(text))

    assert masked.params["password"] == "***"
    assert masked.params["key"] == "id"


@given(password=st.text(alphabet="abcXYZ0189_-.!", min_size=1, max_size=20))
def test_redaction_masks_url_passwords(password: str) -> None:
    text = f"type=xyz&url=https://bob:{password}@tiles.example.com/{{z}}.png&zmax=19"

    assert f":{password}@" not in redact(text)


@given(
    base=st.sampled_from(sorted(set(BASE_TYPES) - {"NoGeometry", "Unknown"})),
    suffix=st.sampled_from(["", "Z", "M", "ZM"]),
)
def test_wkb_names_and_codes_agree(base: str, suffix: str) -> None:
    name = base + suffix

    assert normalise_name(name.upper()) == name
    code = wkb_type_code(name)
    assert code is not None
    assert code % 1000 == BASE_TYPES[base]
    assert code // 1000 == ["", "Z", "M", "ZM"].index(suffix)
