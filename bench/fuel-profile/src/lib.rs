//! `make fuel-profile`: where sticky.wasm spends its fuel (host-tests' cost
//! measure, ≈ wasm instructions), per function, on the paths host-tests
//! gates. [`instrument`] wraps every function in calls the host answers by
//! reading the fuel left; [`paths`] drives the module through the fake
//! proxy-wasm host the same way the cost test does; [`report`] prints the
//! costs and their difference to a saved profile (before/after a change).

pub mod instrument;
pub mod paths;
pub mod report;
