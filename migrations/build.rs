//! Rebuilds the crate when a migration is added or changed: `embed_migrations!` reads `sql/`
//! at compile time, and cargo does not know it does.

fn main() {
    println!("cargo:rerun-if-changed=sql");
}
