"""matteralign: how similar are the internal representations of matter across foundation models."""

__version__ = "0.1.0"
