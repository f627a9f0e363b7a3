"""Study-level analyses built on the metrics: alignment matrices over a dataset's models."""
