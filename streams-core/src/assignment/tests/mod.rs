//! Tests of the assignor: one per rule (`rules`), invariants over random groups
//! (`properties`).

mod properties;
mod rules;
mod support;
