"""MPNet: `attention.attn` with q / k / v / o projections, positions counted from the padding id, no token
types. Its relative-position bias has one column per head of the original model and is shared by all
layers, so heads are not removed (FFN neurons, layers and everything else are)."""

from .base import Family

MPNET = Family(
    "mpnet", ("mpnet",),
    attention="attention.attn",
    head_rows=("attention.attn.q", "attention.attn.k", "attention.attn.v"),
    attention_out="attention.attn.o",
    token_types=False,
    positions_from_padding=True,
    unsupported={"heads_keep": "MPNet's relative-position bias is one table per original head, shared by all "
                               "layers; its heads stay"},
)
