//! Tests of the assignor: one per rule (`rules`), invariants over random groups
//! (`properties`), and the userData encoding (`wire`).

mod properties;
mod rules;
mod support;
mod wire;
