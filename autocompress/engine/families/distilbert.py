"""DistilBERT: `transformer.layer`, q/k/v/out `_lin` projections, an `ffn` of `lin1` / `lin2`, and config
keys of its own (`n_heads`, `hidden_dim`, `n_layers`); no token types."""

from .base import Family

DISTILBERT = Family(
    "distilbert", ("distilbert",),
    layers="transformer.layer",
    attention="attention",
    head_rows=("attention.q_lin", "attention.k_lin", "attention.v_lin"),
    attention_out="attention.out_lin",
    ffn_in="ffn.lin1",
    ffn_out="ffn.lin2",
    heads_attr="n_heads",
    all_heads_attr=None,
    config_heads="n_heads",
    config_ffn="hidden_dim",
    config_layers="n_layers",
    token_types=False,
)
