"""Language-conditioned visuomotor policies (stage 4 of DreamGen): image + instruction + state in,
a chunk of future actions out. Two families: a small Diffusion Policy (conditional 1D U-Net,
diffusers DDPM/DDIM schedulers) and a GR00T-style transformer action head trained with flow
matching; both train on real and neural trajectories mixed at a ratio (`windows.mix_sampler`)."""
