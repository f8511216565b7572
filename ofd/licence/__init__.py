"""The C 0210-2021 特种作业操作证 e-licence: data model, validation, catalogue, identifiers.

Entry points: `validate_record` (JSON record -> `Licence`, or `LicenceError` listing
every field problem in Chinese and English), `Licence.metadata` / `Licence.from_metadata`
(the e-licence metadata round trip), `make_identifier` / `parse_identifier`
(GB/T 36904), `validate_id_number` (GB 11643), `validate_uscc` (GB 32100),
`load_catalogue` (特种作业目录 + provincial extras).
"""

from .catalogue import Catalogue, Category, Item, default_catalogue, load_catalogue
from .errors import FIELD_LABELS, ConfigError, FieldError, LicenceError
from .idcard import IdInfo, id_check_char, mask_id_number, validate_id_number
from .identifier import Identifier, check_char, make_identifier, parse_identifier
from .model import (
    METADATA_FIELDS,
    PLACEHOLDER_TYPE_CODE,
    TITLE,
    Licence,
    LicenceRecord,
    add_years,
    beijing_today,
    resolve_type_code,
    validate_record,
)
from .photo import PhotoInfo, inspect_photo
from .uscc import uscc_check_char, validate_uscc

__all__ = [
    "Catalogue", "Category", "Item", "default_catalogue", "load_catalogue",
    "FIELD_LABELS", "ConfigError", "FieldError", "LicenceError",
    "IdInfo", "id_check_char", "mask_id_number", "validate_id_number",
    "Identifier", "check_char", "make_identifier", "parse_identifier",
    "METADATA_FIELDS", "PLACEHOLDER_TYPE_CODE", "TITLE", "Licence", "LicenceRecord",
    "add_years", "beijing_today", "resolve_type_code", "validate_record",
    "PhotoInfo", "inspect_photo", "uscc_check_char", "validate_uscc",
]
