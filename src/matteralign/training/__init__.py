"""Models the study trains itself: a ladder of ANI potentials on QM9, changing one factor at a
time (training-set size, seed), so that convergence and the noise ceiling are tested under
control. :mod:`.ladder` declares the rungs from the config, :mod:`.qm9_sets` writes their
training sets (driver environment), :mod:`.ani_train` trains one rung with torchani's own
NeuroChem trainer (the ``ani`` family environment).
"""
