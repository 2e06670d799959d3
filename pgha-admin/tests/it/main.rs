//! pgha-admin's integration tests that need no cluster, linked into one binary. The runbook
//! against real clusters is tested through the `pgha` binary, in pgha-cli's tests.

mod hostile;
