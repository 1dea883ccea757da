//! `users-bench-edge`: the edge benchmark ([`users_bench::edge_bench`]); `scripts/bench.sh
//! --edge` builds what it needs and runs it.

fn main() -> anyhow::Result<()> {
    users_bench::edge_bench::main()
}
