//! `slurm` module (see lib.rs for the pipeline).
