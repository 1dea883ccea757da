//! `users-bench`: the load benchmark of the origin ([`users_bench::origin_bench`]).
//!
//! Run it with `scripts/bench.sh` (a release build); `--help` lists the options.

/// The allocator of the `users-origin` binary, so the in-process origin runs as it does alone.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    users_bench::origin_bench::main()
}
