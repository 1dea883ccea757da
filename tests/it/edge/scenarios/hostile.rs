//! Hostile input through the edge: the reported NUL attacks answer the same problems as at the
//! origin, and the hostile-value sweep of every parameter of every route finds no `5xx`, at
//! the edge or (counted by the origin) behind it.

use super::{EdgeRuntime, stack};
use crate::hostile::{nul_cases, sweep};

/// [`nul_cases`] and a sweep with one value of each hostile kind plus random strings.
pub async fn hostile_input_gets_problems_through_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    nul_cases(&edge, &s.app).await;
    let mut values = sweep::edge_values();
    values.extend(sweep::random_values(23, 2));
    let report = sweep::sweep(&s.app, &edge, &values).await;
    println!("{} sweep: {report}", rt.name());
    assert!(report.requests > 500, "the sweep ran: {report}");
}
