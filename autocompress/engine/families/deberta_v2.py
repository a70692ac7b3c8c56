"""DeBERTa-v2 and -v3: disentangled attention. The relative-position projections, when the family does not
share them with key and query (`share_att_key: false`), are grouped by head like query, key and value and
are cut with them; v3 has no absolute position table."""

from .base import Family

DEBERTA_V2 = Family(
    "deberta-v2", ("deberta-v2",),
    head_rows=("attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj",
               "attention.self.pos_key_proj", "attention.self.pos_query_proj"),
)
