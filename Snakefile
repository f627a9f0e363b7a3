# matteralign: alignment of the internal representations of matter across foundation models.
# The workflow is a thin layer over the `matteralign` package: every rule calls its CLI.
from snakemake.utils import min_version

min_version("9.0")


# The default study, unless a study (a config with `datasets`) is given with --configfile: it
# then replaces the default rather than being merged into it, so a smaller study does not
# inherit the default's datasets. Plain --config overrides apply to either.
if "datasets" not in config:

    configfile: "config/config.yaml"



include: "workflow/rules/validate.smk"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/envs.smk"
include: "workflow/rules/ladder.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        all_targets() + analysis_targets() + ladder_targets(),
    default_target: True
