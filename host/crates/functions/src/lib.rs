//! `oort-functions`: the SQL function library (scalar functions and aggregate
//! accumulators). Looked up once at plan time; called per event.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
