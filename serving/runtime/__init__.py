"""Running under BentoML: the launcher, the start-up hooks, the patches to dependencies, worker supervision."""
