"""The machine: embeddings of segments (`embed`), the per-code suggestion model (`model`, a
scikit-learn style estimator) and the suggest/train stage over a study (`suggest`)."""
