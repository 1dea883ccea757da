//! `users-bench-transfer`: the import and export benchmark ([`users_bench::transfer_bench`]);
//! `scripts/bench.sh --transfer` builds the origin in release and runs it.

fn main() -> anyhow::Result<()> {
    users_bench::transfer_bench::main()
}
