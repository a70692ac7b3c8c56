"""The one selector of the weights techniques act on."""

from autocompress.engine.prune import prunable
from autocompress.engine.quantize import quant_targets
from autocompress.engine.targets import embedding_tables, encoder_linears
from conftest import make_tiny


def test_encoder_linears_are_the_six_per_layer_and_the_pooler():
    model = make_tiny()
    names = list(encoder_linears(model))
    assert len(names) == 3 * 6 + 1
    assert names[:6] == [f"hf.bert.encoder.layer.0.{p}" for p in (
        "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
        "intermediate.dense", "output.dense")]
    assert names[-1] == "hf.bert.pooler.dense"
    assert not any("classifier" in n or "embeddings" in n for n in names)


def test_embedding_tables_are_words_and_positions():
    assert list(embedding_tables(make_tiny())) == ["hf.bert.embeddings.word_embeddings",
                                                   "hf.bert.embeddings.position_embeddings"]


def test_pruning_and_quantization_select_the_same_weights():
    model = make_tiny()
    assert list(prunable(model)) == list(encoder_linears(model))
    targets = quant_targets(model, 4, 8)
    assert {k for k, b in targets.items() if b == 4} == {f"{n}.weight" for n in encoder_linears(model)}
    assert {k for k, b in targets.items() if b == 8} == {f"{n}.weight" for n in embedding_tables(model)}
