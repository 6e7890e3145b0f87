"""The libqfieldsync primary-key rule (reference section 3.3).

Used for ``qfc_source_data_pk_name`` and by packaging and delta application:

1. vector layers only;
2. the provider reports exactly one key attribute: use it;
3. more than one (composite key): unsupported;
4. none: a field named ``fid`` in any letter case (aliases do not count);
5. no such field: unsupported;
6. a key name containing ``,`` is unsupported.

Unsupported is returned as ``""``, as the reference stores it.
"""

from collections.abc import Sequence

from qfjobs.qgis.checkresult import FieldInfo

READ_ONLY_REASON = "no supported primary key, the layer will be read-only in QField"


def source_pk_name(
    primary_keys: Sequence[str], fields: Sequence[FieldInfo], *, is_vector: bool = True
) -> str:
    """The usable primary-key attribute name, or ``""`` when there is none."""
    if not is_vector:
        return ""

    if len(primary_keys) > 1:
        return ""

    if len(primary_keys) == 1:
        name = primary_keys[0]
    else:
        name = next((f.name for f in fields if f.name.lower() == "fid"), "")

    return "" if "," in name else name
