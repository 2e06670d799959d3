//! The library half of the `pgha` command: what its fuzz targets and tests reach from outside
//! the binary. Not a stable API — `pgha`'s interface is its command line (see the README).
#![deny(missing_docs)]

#[doc(hidden)]
pub mod patroni_config;
#[doc(hidden)]
pub mod settings_file;
