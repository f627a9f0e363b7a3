# The study config against the package's config.schema.yaml, defaults filled in (what
# snakemake.utils.validate does), with the problem told in one line that names the key: the
# same check as `matteralign check-config`.
from matteralign.config import ConfigError, validate_schema

try:
    config.update(validate_schema(config))
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None
