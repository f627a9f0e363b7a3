# The study config against the package's config.schema.yaml, defaults filled in (what
# snakemake.utils.validate does), with the problem told in one line that names the key: the
# same check as `matteralign check-config`. Snakemake has already read each config file with
# its own loader, which keeps the last of two equal keys without a word: every file (the
# --configfile ones and the default config/config.yaml) is read again strictly first.
from matteralign.config import ConfigError, read_config, validate_schema

try:
    for _configfile in workflow.configfiles:
        read_config(_configfile)
    config.update(validate_schema(config))
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None
