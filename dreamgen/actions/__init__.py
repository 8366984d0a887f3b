"""Pseudo-action labelling: the inverse-dynamics model (idm), the latent action model (lam),
the labeller (label) and the stage steps that use them (pipeline)."""
