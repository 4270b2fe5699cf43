"""A probe model for the parity suite: it returns its (transformed) features as its outputs.

With it, every transform's result is written out and compared column by column, so a difference
between engines is traced to the op that caused it, not only to a model score downstream.
"""

from common.model import ModelHandler


class FeatureEcho(ModelHandler):
    def load_model(self):
        return None

    def run_inference(self, batch, model):
        table = batch.table(list(self.bundle.features))
        return {
            out: table.column(feat)
            for out, feat in zip(self.bundle.outputs, self.bundle.features, strict=True)
        }
