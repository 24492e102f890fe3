//! See the module list in `cluster/mod.rs`. (Being written.)
