"""Study-level analyses built on the metrics: alignment matrices over a dataset's models."""

from matteralign.analysis.study import AlignmentError, StudyEmbeddings, load_study

__all__ = ["AlignmentError", "StudyEmbeddings", "load_study"]
