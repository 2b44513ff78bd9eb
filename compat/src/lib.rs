//! Compatibility tests against the official `tikv-client` crate live here once the server
//! speaks enough of the protocol (raw KV, then transactions).
